//go:build integration

package mongo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/storetest"
)

const servers = "FerretDB v1.24.2 or MongoDB ≥ 5"

// requireEnv returns the variable's value, or skips the test when it is
// unset (fails it instead when REGCTL_TEST_REQUIRE=1, as in CI).
func requireEnv(t *testing.T, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := fmt.Sprintf("%s is not set: set it to %s", name, what)
		if os.Getenv("REGCTL_TEST_REQUIRE") == "1" {
			t.Fatal(msg + "; REGCTL_TEST_REQUIRE=1 forbids skipping")
		}
		t.Skip(msg)
	}
	return v
}

func testURI(t *testing.T) string {
	return requireEnv(t, "REGCTL_TEST_MONGO_URI",
		"the connection string of a test server ("+servers+"), such as mongodb://127.0.0.1:27017/")
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// uniqueDB returns a fresh database name.
func uniqueDB() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "regctl_test_" + hex.EncodeToString(b)
}

// openDB opens a store on database db and drops the database at cleanup.
func openDB(t *testing.T, uri, db string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(testCtx(t), uri, append([]Option{WithDatabase(db)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.db.Drop(ctx); err != nil {
			t.Logf("drop database %s: %v", db, err)
		}
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openFresh opens a store on a new database. Its timeout is generous: the
// tests share a loaded machine, and only TestUnavailable is about timing.
func openFresh(t *testing.T) *Store {
	t.Helper()
	return openDB(t, testURI(t), uniqueDB(), WithTimeout(20*time.Second))
}

func TestConformance(t *testing.T) {
	testURI(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openFresh(t)
		// RulesVersion's time bucket must not turn during a subtest; the
		// other timestamps keep the real clock.
		pinned := time.Now()
		s.versionNow = func() time.Time { return pinned }
		return s
	})
}

// TestAttemptLogConformance: two clients on one database, as two token
// servers on one store have.
func TestAttemptLogConformance(t *testing.T) {
	uri := testURI(t)
	storetest.RunAttemptLog(t, func(t *testing.T) (store.AttemptLog, store.AttemptLog) {
		db := uniqueDB()
		return openDB(t, uri, db, WithTimeout(20*time.Second)), openDB(t, uri, db, WithTimeout(20*time.Second))
	})
}

func TestOpenOptions(t *testing.T) {
	uri := testURI(t)
	db := uniqueDB()
	s := openDB(t, uri, db, WithUsersCollection("accounts"), WithRulesCollection("rules"), WithMetaCollection("meta"))
	if s.Database() != db || s.users.Name() != "accounts" || s.rules.Name() != "rules" || s.meta.Name() != "meta" {
		t.Errorf("store uses %s.%s, %s.%s and %s.%s", s.Database(), s.users.Name(), s.Database(), s.rules.Name(),
			s.Database(), s.meta.Name())
	}
	// Opening again is a no-op on the indexes.
	s2 := openDB(t, uri, db, WithUsersCollection("accounts"), WithRulesCollection("rules"))
	if err := s2.CreateUser(testCtx(t), &store.User{Username: "a", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	err := s.CreateUser(testCtx(t), &store.User{Username: "a", PasswordHash: "h"})
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate across handles: %v, want ErrExists", err)
	}
}

// rawClient connects to the test server without the store.
func rawClient(t *testing.T) *mongodrv.Client {
	t.Helper()
	c, err := mongodrv.Connect(options.Client().ApplyURI(testURI(t)).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// TestOpenExistingDockerAuth: a database docker_auth created (its indexes,
// its documents) opens unchanged.
func TestOpenExistingDockerAuth(t *testing.T) {
	uri := testURI(t)
	db := uniqueDB()
	raw := rawClient(t).Database(db)
	t.Cleanup(func() { _ = raw.Drop(context.Background()) })
	ctx := testCtx(t)
	// What docker_auth's NewMongoAuth and updateACLCache create.
	for coll, key := range map[string]string{"users": "username", "acl": "seq"} {
		_, err := raw.Collection(coll).Indexes().CreateOne(ctx, mongodrv.IndexModel{
			Keys: bson.M{key: 1}, Options: options.Index().SetUnique(true),
		})
		if err != nil {
			t.Fatalf("create docker_auth index: %v", err)
		}
	}
	if _, err := raw.Collection("users").InsertOne(ctx, bson.D{
		{Key: "username", Value: "alice"}, {Key: "password", Value: "$2y$05$abc"},
	}); err != nil {
		t.Fatal(err)
	}
	s := openDB(t, uri, db)
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Errorf("GetUser: %v", err)
	}
}

// TestOpenExistingIndexes: a unique index under another name is accepted;
// a non-unique one on the field is an error, not silently kept.
func TestOpenExistingIndexes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		unique bool
	}{{"byname", true}, {"username_1", false}} {
		t.Run(fmt.Sprintf("%s unique=%v", tt.name, tt.unique), func(t *testing.T) {
			uri, db := testURI(t), uniqueDB()
			raw := rawClient(t).Database(db)
			t.Cleanup(func() { _ = raw.Drop(context.Background()) })
			ctx := testCtx(t)
			_, err := raw.Collection("users").Indexes().CreateOne(ctx, mongodrv.IndexModel{
				Keys: bson.D{{Key: "username", Value: 1}}, Options: options.Index().SetUnique(tt.unique).SetName(tt.name),
			})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, uri, WithDatabase(db))
			if err == nil {
				_ = s.Close(ctx)
			}
			if (err == nil) != tt.unique {
				t.Errorf("Open: %v; want success exactly when the index is unique", err)
			}
			t.Logf("Open: %v", err)
		})
	}
}

// TestOpenDuplicateUsernames: a database without the unique index that
// holds two users of one name cannot get the index; Open must say so.
func TestOpenDuplicateUsernames(t *testing.T) {
	uri := testURI(t)
	db := uniqueDB()
	raw := rawClient(t).Database(db)
	t.Cleanup(func() { _ = raw.Drop(context.Background()) })
	ctx := testCtx(t)
	for range 2 {
		if _, err := raw.Collection("users").InsertOne(ctx, bson.D{{Key: "username", Value: "twin"}}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, uri, WithDatabase(db))
	if err == nil {
		_ = s.Close(ctx)
		t.Fatal("Open succeeded on duplicate usernames")
	}
	if !strings.Contains(err.Error(), "users.username") {
		t.Errorf("error %q does not name the index", err)
	}
	t.Logf("Open: %v", err)
}

const dockerAuthHash = "$2y$05$LO9Ab6qkMz3Vb/N9yL2F/.sOo3F1v0PMLYtFpSRwFo3Q7T9uZ5zW6"

func TestDockerAuthUsers(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	docs := []any{
		bson.D{
			{Key: "username", Value: "alice"},
			{Key: "password", Value: dockerAuthHash},
			{Key: "labels", Value: bson.D{
				{Key: "group", Value: bson.A{"dev", "ops"}},
				{Key: "single", Value: "only"}, // a string, not an array
			}},
			{Key: "extra", Value: "kept"},
		},
		bson.D{{Key: "username", Value: "bob"}, {Key: "password", Value: dockerAuthHash}},
	}
	if _, err := s.users.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	u, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if u.PasswordHash != dockerAuthHash || u.Disabled || u.ExpiresAt != nil || u.Grants != nil ||
		!u.CreatedAt.IsZero() || u.Status(time.Now()) != store.StatusActive {
		t.Errorf("docker_auth user decoded as %+v", u)
	}
	if g := u.Labels["group"]; len(g) != 2 || g[0] != "dev" || g[1] != "ops" {
		t.Errorf("labels.group = %q", g)
	}
	if v := u.Labels["single"]; len(v) != 1 || v[0] != "only" {
		t.Errorf("labels.single = %q, want [only]", v)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("ListUsers = %v, %v", users, err)
	}

	// Updating a document without rev adds regctl's fields and keeps
	// docker_auth's and unknown ones.
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.UpdateUser(ctx, "alice", func(u *store.User) error {
		u.ExpiresAt = &exp
		return nil
	}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	var doc bson.M
	if err := s.users.FindOne(ctx, bson.D{{Key: "username", Value: "alice"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["extra"] != "kept" || doc["password"] != dockerAuthHash || doc["rev"] != int64(1) {
		t.Errorf("after UpdateUser, document = %v; want extra, password kept and rev 1", doc)
	}
	if _, ok := doc["labels"].(bson.D); !ok {
		t.Errorf("labels stored as %T", doc["labels"])
	}
	if _, err := s.UpdateUser(ctx, "alice", func(_ *store.User) error { return nil }); err != nil {
		t.Fatalf("second UpdateUser: %v", err)
	}
	if err := s.users.FindOne(ctx, bson.D{{Key: "username", Value: "alice"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["rev"] != int64(2) || doc["extra"] != "kept" {
		t.Errorf("after second UpdateUser, document = %v", doc)
	}

	// A regctl-written user is a valid docker_auth user: password and
	// labels as arrays.
	if err := s.CreateUser(ctx, &store.User{Username: "carol", PasswordHash: "",
		Labels: map[string][]string{"g": {"x"}}}); err != nil {
		t.Fatal(err)
	}
	var carol struct {
		Username *string             `bson:"username"`
		Password *string             `bson:"password"`
		Labels   map[string][]string `bson:"labels"`
	}
	if err := s.users.FindOne(ctx, bson.D{{Key: "username", Value: "carol"}}).Decode(&carol); err != nil {
		t.Fatal(err)
	}
	// docker_auth accepts any password when the field is absent, so an
	// empty hash must still be written.
	if carol.Password == nil || carol.Labels["g"][0] != "x" {
		t.Errorf("regctl user as docker_auth reads it: %+v", carol)
	}
}

func TestDockerAuthUserBadTypes(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	for name, doc := range map[string]bson.D{
		"badlabels": {{Key: "labels", Value: bson.D{{Key: "g", Value: int32(5)}}}},
		"badexpiry": {{Key: "expires_at", Value: "tomorrow"}},
		"badgrants": {{Key: "grants", Value: bson.A{"x"}}},
	} {
		doc = append(bson.D{{Key: "username", Value: name}, {Key: "password", Value: "h"}}, doc...)
		if _, err := s.users.InsertOne(ctx, doc); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetUser(ctx, name)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("GetUser(%s) error = %v, want one naming the user", name, err)
		}
	}
}

func TestDockerAuthRules(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	// Out of seq order, seq as int64, int32 (mgo) and double (mongo shell).
	docs := []any{
		bson.D{{Key: "seq", Value: int64(30)}, {Key: "match", Value: bson.D{{Key: "account", Value: "/.+/"}}},
			{Key: "actions", Value: bson.A{"pull"}}, {Key: "comment", Value: "logged in users can pull"}},
		bson.D{{Key: "seq", Value: int32(10)}, {Key: "match", Value: bson.D{{Key: "account", Value: "admin"}}},
			{Key: "actions", Value: bson.A{"*"}}, {Key: "comment", Value: "admin has full access"}},
		bson.D{{Key: "seq", Value: 20.0}, {Key: "match", Value: bson.D{
			{Key: "name", Value: "${labels:group}/*"},
			{Key: "labels", Value: bson.D{{Key: "group", Value: "dev"}}},
			{Key: "ip", Value: "10.0.0.0/8"}}},
			{Key: "actions", Value: bson.A{}}},
		bson.D{{Key: "seq", Value: int64(40)}, {Key: "match", Value: bson.D{}}},
	}
	if _, err := s.rules.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	rules, err := s.ListRules(ctx)
	if err != nil {
		t.Fatalf("ListRules: %v", err)
	}
	var seqs []int64
	for _, r := range rules {
		seqs = append(seqs, r.Seq)
	}
	if fmt.Sprint(seqs) != "[10 20 30 40]" {
		t.Fatalf("seqs = %v, want [10 20 30 40]", seqs)
	}
	if r := rules[0]; r.Comment != "admin has full access" || *r.Match.Account != "admin" || r.Actions[0] != "*" {
		t.Errorf("rule 10 = %+v", r)
	}
	if r := rules[1]; r.Actions == nil || len(r.Actions) != 0 || r.Match.Labels["group"] != "dev" ||
		*r.Match.IP != "10.0.0.0/8" || *r.Match.Name != "${labels:group}/*" {
		t.Errorf("rule 20 = %+v", r)
	}
	if r := rules[3]; r.Actions != nil {
		t.Errorf("rule 40 without actions decoded to %#v, want nil (invalid for acl)", r.Actions)
	}
	if err := s.RemoveRule(ctx, 10); err != nil {
		t.Errorf("RemoveRule(int32 seq): %v", err)
	}
	if err := s.RemoveRule(ctx, 20); err != nil {
		t.Errorf("RemoveRule(double seq): %v", err)
	}
	if err := s.AddRule(ctx, acl.Rule{Seq: 30, Actions: []string{}}); !errors.Is(err, store.ErrExists) {
		t.Errorf("AddRule over a docker_auth seq: %v, want ErrExists", err)
	}
}

func TestDockerAuthBadRules(t *testing.T) {
	for _, tt := range []struct {
		name string
		doc  bson.D
		want []string
	}{
		{"unknown match key", bson.D{{Key: "seq", Value: int64(40)},
			{Key: "match", Value: bson.D{{Key: "repository", Value: "x/*"}}}, {Key: "actions", Value: bson.A{"pull"}}},
			[]string{"seq 40", "repository", "unknown match key"}},
		{"wrong type", bson.D{{Key: "seq", Value: int64(41)},
			{Key: "match", Value: bson.D{{Key: "account", Value: int32(5)}}}, {Key: "actions", Value: bson.A{"pull"}}},
			[]string{"seq 41", "account"}},
		{"actions not strings", bson.D{{Key: "seq", Value: int64(42)},
			{Key: "match", Value: bson.D{}}, {Key: "actions", Value: "pull"}},
			[]string{"seq 42", "actions"}},
		{"unknown field", bson.D{{Key: "seq", Value: int64(43)},
			{Key: "match", Value: bson.D{}}, {Key: "action", Value: bson.A{"pull"}}},
			[]string{"seq 43", "action"}},
		{"missing match", bson.D{{Key: "seq", Value: int64(44)}, {Key: "actions", Value: bson.A{"pull"}}},
			[]string{"seq 44", "match"}},
		{"missing seq", bson.D{{Key: "match", Value: bson.D{}}, {Key: "actions", Value: bson.A{"pull"}}},
			[]string{"missing seq"}},
		{"fractional seq", bson.D{{Key: "seq", Value: 1.5}, {Key: "match", Value: bson.D{}}},
			[]string{"seq", "1.5"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openFresh(t)
			ctx := testCtx(t)
			good := bson.D{{Key: "seq", Value: int64(1)}, {Key: "match", Value: bson.D{}}, {Key: "actions", Value: bson.A{"pull"}}}
			if _, err := s.rules.InsertMany(ctx, []any{good, tt.doc}); err != nil {
				t.Fatal(err)
			}
			rules, err := s.ListRules(ctx)
			if err == nil {
				t.Fatalf("ListRules = %+v, want an error", rules)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("a decode error matches ErrUnavailable: %v", err)
			}
		})
	}
}

// TestUpdateUserTwoHandles: optimistic concurrency across two processes'
// worth of clients, not only goroutines sharing one.
func TestUpdateUserTwoHandles(t *testing.T) {
	uri, db := testURI(t), uniqueDB()
	a := openDB(t, uri, db)
	b, err := Open(testCtx(t), uri, WithDatabase(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	ctx := testCtx(t)
	if err := a.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	var wg sync.WaitGroup
	for i := range 2 * n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for {
				_, err := s.UpdateUser(ctx, "alice", func(u *store.User) error {
					if u.Labels == nil {
						u.Labels = map[string][]string{}
					}
					u.Labels["n"] = append(u.Labels["n"], fmt.Sprint(i))
					return nil
				})
				if !errors.Is(err, store.ErrConflict) {
					if err != nil {
						t.Errorf("UpdateUser: %v", err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	u, err := a.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Labels["n"]) != 2*n {
		t.Errorf("label n has %d values, want %d: %q", len(u.Labels["n"]), 2*n, u.Labels["n"])
	}
}

// TestUpdateUserLock: a live lock document makes UpdateUser give up with
// ErrConflict; an expired one (its holder died) is taken over; none is
// left behind.
func TestUpdateUserLock(t *testing.T) {
	uri, db := testURI(t), uniqueDB()
	s := openDB(t, uri, db, WithTimeout(time.Second))
	ctx := testCtx(t)
	if err := s.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	lock := func(exp time.Time) {
		t.Helper()
		if _, err := s.locks.InsertOne(ctx, bson.D{{Key: "key", Value: "user:alice"}, {Key: "expires_at", Value: exp}}); err != nil {
			t.Fatal(err)
		}
	}
	disable := func(u *store.User) error { u.Disabled = true; return nil }

	lock(time.Now().Add(time.Hour))
	start := time.Now()
	_, err := s.UpdateUser(ctx, "alice", disable)
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateUser while locked: %v, want ErrConflict", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("UpdateUser while locked took %v with a 1s timeout", d)
	}
	t.Logf("while locked: %v", err)
	if _, err := s.locks.DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}

	lock(time.Now().Add(-time.Second))
	if _, err := s.UpdateUser(ctx, "alice", disable); err != nil {
		t.Errorf("UpdateUser over an expired lock: %v", err)
	}
	if n, err := s.locks.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("%d lock documents left (%v), want 0", n, err)
	}
}

// TestReplaceRulesLeavesNoScratch: ReplaceRules' scratch collections are
// gone afterwards, and the swapped-in collection keeps the unique index.
func TestReplaceRulesLeavesNoScratch(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	for range 3 {
		if err := s.ReplaceRules(ctx, []acl.Rule{{Seq: 1, Actions: []string{}}, {Seq: 2, Actions: []string{"pull"}}}); err != nil {
			t.Fatalf("ReplaceRules: %v", err)
		}
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n != "users" && n != "acl" && n != DefaultLocksCollection && n != DefaultMetaCollection && n != DefaultAttemptsCollection {
			t.Errorf("leftover collection %q", n)
		}
	}
	if _, err := s.rules.InsertOne(ctx, bson.D{{Key: "seq", Value: int64(2)}}); !mongodrv.IsDuplicateKeyError(err) {
		t.Errorf("raw insert of a duplicate seq after ReplaceRules: %v, want a duplicate key error", err)
	}
}

// TestReplaceRulesConcurrentWriters: two ReplaceRules racing each other
// both succeed, one complete set wins, and no scratch collection is left.
func TestReplaceRulesConcurrentWriters(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	set := func(tag string, n int) []acl.Rule {
		var rs []acl.Rule
		for i := range n {
			rs = append(rs, acl.Rule{Seq: int64(i), Actions: []string{}, Comment: tag})
		}
		return rs
	}
	var wg sync.WaitGroup
	for _, tag := range []string{"x", "y"} {
		wg.Go(func() {
			for range 10 {
				if err := s.ReplaceRules(ctx, set(tag, 5)); err != nil {
					t.Errorf("ReplaceRules(%s): %v", tag, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rules, err := s.ListRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 5 {
		t.Fatalf("%d rules, want 5", len(rules))
	}
	for _, r := range rules {
		if r.Comment != rules[0].Comment {
			t.Errorf("mixed sets: %q and %q", rules[0].Comment, r.Comment)
		}
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, "_regctl_") {
			t.Errorf("leftover collection %q", n)
		}
	}
}

// TestRenameCodes pins the server behaviour ReplaceRules relies on:
// renaming a missing collection is NamespaceNotFound, renaming onto an
// existing one (no dropTarget: FerretDB lacks it) is NamespaceExists, and
// indexes move with the collection.
func TestRenameCodes(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	if err := s.rename(ctx, "nosuch", "other"); !hasCode(err, codeNamespaceNotFound) {
		t.Errorf("rename of a missing collection: %v, want code %d", err, codeNamespaceNotFound)
	}
	if _, err := s.db.Collection("a").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	// users exists: Open created its index.
	if err := s.rename(ctx, "a", "users"); !hasCode(err, codeNamespaceExists) {
		t.Errorf("rename onto an existing collection: %v, want code %d", err, codeNamespaceExists)
	}
	if err := s.rename(ctx, "users", "b"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	unique, err := hasUniqueIndex(ctx, s.db.Collection("b"), "username")
	if err != nil || !unique {
		t.Errorf("after rename, unique username index present = %v (%v)", unique, err)
	}
}

// TestReplaceRulesConcurrentReader: a reader running while the rule set
// is replaced sees the old set, the new set or nothing, never a mixture.
func TestReplaceRulesConcurrentReader(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	set := func(tag string) []acl.Rule {
		var rs []acl.Rule
		for i := range 20 {
			rs = append(rs, acl.Rule{Seq: int64(i), Actions: []string{}, Comment: tag})
		}
		return rs
	}
	if err := s.ReplaceRules(ctx, set("a")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var reads, empty int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			rules, err := s.ListRules(ctx)
			if err != nil {
				t.Errorf("ListRules: %v", err)
				return
			}
			reads++
			if len(rules) == 0 {
				empty++
				continue
			}
			if len(rules) != 20 {
				t.Errorf("reader saw %d rules, want 0 or 20", len(rules))
				return
			}
			for _, r := range rules {
				if r.Comment != rules[0].Comment {
					t.Errorf("reader saw a mixture of sets %q and %q", rules[0].Comment, r.Comment)
					return
				}
			}
		}
	})
	for i := range 20 {
		if err := s.ReplaceRules(ctx, set(string(rune('b'+i%2)))); err != nil {
			t.Errorf("ReplaceRules: %v", err)
			break
		}
	}
	close(done)
	wg.Wait()
	t.Logf("%d reads, %d saw the empty set between renames", reads, empty)
}

// TestUnavailable runs a private FerretDB, kills it, and checks that every
// method fails closed, fast.
func TestUnavailable(t *testing.T) {
	bin := requireEnv(t, "REGCTL_TEST_FERRETDB",
		"the path of a FerretDB v1.24.2 binary (scripts/test-deps.sh builds it), which this test starts and kills")
	uri, stop := startFerretDB(t, bin)
	storetest.RunUnavailable(t, func(t *testing.T) store.Store {
		s, err := Open(testCtx(t), uri, WithTimeout(2*time.Second))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}, stop, 8*time.Second)

	// Opening a store on the dead server fails fast too.
	start := time.Now()
	_, err := Open(testCtx(t), uri, WithTimeout(2*time.Second))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open on a stopped server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open on a stopped server took %v", d)
	}
}

// startFerretDB starts ferretdb with an SQLite backend in a temporary
// directory on a free 127.0.0.1 port, and returns its URI and a function
// that kills it.
func startFerretDB(t *testing.T, bin string) (string, func(*testing.T)) {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	cmd := exec.Command(bin,
		"--handler=sqlite", "--sqlite-url=file:"+dir+"/", "--state-dir="+dir,
		"--listen-addr="+addr, "--debug-addr=-", "--telemetry=disable", "--log-level=WARN")
	cmd.Env = append(os.Environ(), "DO_NOT_TRACK=1")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	stopped := false
	stop := func(t *testing.T) {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Kill()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Errorf("ferretdb did not exit after kill")
		}
	}
	t.Cleanup(func() {
		stop(t)
		if t.Failed() {
			t.Logf("ferretdb output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-waited:
			t.Fatalf("ferretdb exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferretdb not listening on %s after 30s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "mongodb://" + addr + "/regctl_unavailable", stop
}
