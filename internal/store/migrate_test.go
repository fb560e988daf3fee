package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "regctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

func sp(s string) *string { return &s }

// seed fills st with users covering every field and the classic rules.
func seed(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	exp := time.Date(2027, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	users := []store.User{
		{Username: "waldi", PasswordHash: "$2y$10$W50MKqZGAMLcTMs7yTOd1uI3vAm1TaDeVwiBs96gAfiBqK/mkIrDy",
			Labels: map[string][]string{"full-access": {"test/*", "socke*"}}},
		{Username: "bob", PasswordHash: "$2a$10$abcdefghijklmnopqrstuu5Bz0qmkg7nVsmzQyNmV2fDsu0Xv8/Ki", ExpiresAt: &exp, Disabled: true,
			Grants: []acl.Grant{{Pattern: "team/*.x", Actions: []string{"pull", "push"}, ExpiresAt: &exp}}},
	}
	for i := range users {
		if err := st.CreateUser(ctx, &users[i]); err != nil {
			t.Fatal(err)
		}
	}
	rules := []acl.Rule{
		{Seq: 10, Match: acl.Match{Name: sp("${labels:full-access}")}, Actions: []string{"*"}},
		{Seq: 5, Match: acl.Match{Name: sp("secret/*")}, Actions: []string{}, Comment: "deny"},
		{Seq: 20, Match: acl.Match{Name: sp("${labels:read-only-access}")}, Actions: []string{"pull"}, ExpiresAt: &exp},
	}
	if err := st.ReplaceRules(ctx, rules); err != nil {
		t.Fatal(err)
	}
}

// testMigrate runs the migration scenario from a seeded SQLite store into dst.
func testMigrate(t *testing.T, dst store.Store) {
	ctx := context.Background()
	src := openSQLite(t)
	seed(t, src)

	dry, err := store.Migrate(ctx, src, dst, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Created) != 2 || !dry.RulesSet {
		t.Fatalf("dry run report %+v", dry)
	}
	if users, _ := dst.ListUsers(ctx); len(users) != 0 {
		t.Fatal("dry run wrote users")
	}

	rep, err := store.Migrate(ctx, src, dst, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Created, ",") != "bob,waldi" || len(rep.Updated) != 0 || !rep.RulesSet || rep.Rules != 3 || rep.Hash == "" {
		t.Fatalf("first run report %+v", rep)
	}
	want, _ := store.ContentHash(ctx, src)
	if got, _ := store.ContentHash(ctx, dst); got != want {
		t.Fatalf("hash %s != %s", got, want)
	}
	u, err := dst.GetUser(ctx, "bob")
	if err != nil || !u.Disabled || u.ExpiresAt == nil || u.Grants[0].Pattern != "team/*.x" || u.PasswordHash[:4] != "$2a$" {
		t.Fatalf("bob = %+v, %v", u, err)
	}

	// Idempotent: a second run changes nothing.
	rep, err = store.Migrate(ctx, src, dst, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Created)+len(rep.Updated) != 0 || rep.Unchanged != 2 || rep.RulesSet {
		t.Fatalf("second run report %+v", rep)
	}

	// A change in the source is carried over as an update.
	if _, err := src.UpdateUser(ctx, "waldi", func(u *store.User) error { u.Labels["full-access"] = []string{"x/*"}; return nil }); err != nil {
		t.Fatal(err)
	}
	rep, err = store.Migrate(ctx, src, dst, false, false)
	if err != nil || strings.Join(rep.Updated, ",") != "waldi" {
		t.Fatalf("update run %+v, %v", rep, err)
	}

	// A destination-only user stops the copy unless pruning.
	if err := dst.CreateUser(ctx, &store.User{Username: "extra", PasswordHash: "$2y$10$x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, src, dst, false, false); err == nil || !strings.Contains(err.Error(), "--prune") {
		t.Fatalf("extra user: %v", err)
	}
	if _, err := store.Migrate(ctx, src, dst, true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.GetUser(ctx, "extra"); err == nil {
		t.Fatal("extra user survived --prune")
	}
}

func TestMigrateSQLiteToSQLite(t *testing.T) {
	testMigrate(t, openSQLite(t))
}

func TestMigrateRefusesInvalidSourceRules(t *testing.T) {
	src, dst := openSQLite(t), openSQLite(t)
	ctx := context.Background()
	if err := src.ReplaceRules(ctx, []acl.Rule{{Seq: 1, Match: acl.Match{Name: sp("/(/")}, Actions: []string{"pull"}}}); err != nil {
		t.Skip("backend refuses invalid rules itself")
	}
	if _, err := store.Migrate(ctx, src, dst, false, false); err == nil || !strings.Contains(err.Error(), "seq 1") {
		t.Fatalf("invalid source: %v", err)
	}
}
