package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

func ptr[T any](v T) *T { return &v }

// rawDB opens path with the driver alone, as the sqlite3 shell or another
// program would, and closes it at cleanup.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustExec(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(testCtx(t), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

type migrationRow struct {
	version   int
	appliedAt string
}

func migrationRows(t *testing.T, s *Store) []migrationRow {
	t.Helper()
	rows, err := s.reader.QueryContext(testCtx(t), "SELECT version, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.version, &r.appliedAt); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	s, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	first := migrationRows(t, s)
	if len(first) != SchemaVersion() {
		t.Fatalf("schema_migrations = %v, want versions 1..%d", first, SchemaVersion())
	}
	for i, r := range first {
		if r.version != i+1 {
			t.Errorf("schema_migrations row %d has version %d", i, r.version)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.appliedAt); err != nil {
			t.Errorf("applied_at %q: %v", r.appliedAt, err)
		}
	}
	var mode string
	var appID int64
	if err := s.reader.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := s.reader.QueryRow("PRAGMA application_id").Scan(&appID); err != nil || appID != applicationID {
		t.Errorf("application_id = %#x, %v; want %#x", appID, err, applicationID)
	}
	if err := s.CreateUser(testCtx(t), &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	// Reopening applies nothing and keeps the data.
	for range 2 {
		s := openPath(t, path)
		if again := migrationRows(t, s); !slices.Equal(again, first) {
			t.Errorf("after reopening, schema_migrations = %v, want %v", again, first)
		}
		if _, err := s.GetUser(testCtx(t), "alice"); err != nil {
			t.Errorf("GetUser after reopening: %v", err)
		}
	}
}

// TestMigrationsConcurrentOpen: processes creating the database at the same
// moment apply each migration once.
func TestMigrationsConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(testCtx(t), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { _ = stores[i].Close(context.Background()) })
	}
	if t.Failed() {
		return
	}
	if rows := migrationRows(t, stores[0]); len(rows) != SchemaVersion() {
		t.Errorf("schema_migrations = %v, want %d rows", rows, SchemaVersion())
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	s, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	newer := SchemaVersion() + 1
	mustExec(t, s.writer, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", newer, "2099-01-01T00:00:00Z")
	if err := s.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	_, err = Open(testCtx(t), path)
	want := fmt.Sprintf("database schema version %d is newer than this regctl supports (%d); upgrade regctl", newer, SchemaVersion())
	switch {
	case err == nil:
		t.Fatal("Open of a newer schema succeeded")
	case !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path):
		t.Errorf("Open error = %q, want it to name %s and say %q", err, path, want)
	case !errors.Is(err, ErrSchemaTooNew):
		t.Errorf("Open error %v does not match ErrSchemaTooNew", err)
	case errors.Is(err, store.ErrUnavailable):
		t.Errorf("Open error %v matches ErrUnavailable; a version mismatch is not transient", err)
	}
}

func TestForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	mustExec(t, rawDB(t, other), "CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
	_, err := Open(testCtx(t), other)
	if err == nil || !strings.Contains(err.Error(), "not a regctl database") || !strings.Contains(err.Error(), other) {
		t.Errorf("Open(another application's database) error = %v, want one naming the file and saying it is not a regctl database", err)
	}
	var n int
	if err := rawDB(t, other).QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'users'").Scan(&n); err != nil || n != 0 {
		t.Errorf("Open created tables in a foreign database (%d, %v)", n, err)
	}

	tagged := filepath.Join(dir, "tagged.db")
	mustExec(t, rawDB(t, tagged), "PRAGMA application_id = 42")
	if _, err := Open(testCtx(t), tagged); err == nil || !strings.Contains(err.Error(), "application_id 0x2a") {
		t.Errorf("Open(database of application 42) error = %v, want a refusal", err)
	}
}

func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "regctl.db")
	s := openPath(t, path)
	if err := s.CreateUser(testCtx(t), &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(dir, "a"), os.ModeDir | 0o700},
		{filepath.Join(dir, "a", "b"), os.ModeDir | 0o700},
		{path, 0o600},
		{path + "-wal", 0o600},
		{path + "-shm", 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if fi.Mode() != c.want {
			t.Errorf("%s has mode %v, want %v", c.path, fi.Mode(), c.want)
		}
	}
}

func TestOpenRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := openPath(t, "regctl.db")
	if want := filepath.Join(dir, "regctl.db"); s.Path() != want {
		t.Errorf("Path() = %q, want %q", s.Path(), want)
	}
}

func TestOpenBadPaths(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	junk := []byte(strings.Repeat("this is not a SQLite database\n", 200))
	if err := os.WriteFile(garbage, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path  string
		unavailable bool
		want        string
	}{
		{"garbage", garbage, true, "file is not a database"},
		{"directory", dir, false, "not a regular file"},
		{"empty", "", false, "database path is empty"},
		{"memory", ":memory:", false, "in-memory databases are not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(testCtx(t), c.path)
			if err == nil {
				_ = s.Close(context.Background())
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, c.path) || strings.Contains(msg, "\n") {
				t.Errorf("Open error = %q, want one line naming %q and saying %q", msg, c.path, c.want)
			}
			if errors.Is(err, store.ErrUnavailable) != c.unavailable {
				t.Errorf("Open error %v: errors.Is(ErrUnavailable) = %v, want %v", err, !c.unavailable, c.unavailable)
			}
		})
	}
	if b, err := os.ReadFile(garbage); err != nil || string(b) != string(junk) {
		t.Errorf("Open changed the garbage file (%v)", err)
	}
}

// TestCorruptPages: damage found after Open (here, the users table's
// pages overwritten) makes the methods that read it fail closed.
func TestCorruptPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	s, err := Open(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		u := &store.User{Username: fmt.Sprintf("user%04d", i), PasswordHash: strings.Repeat("h", 60)}
		if err := s.CreateUser(testCtx(t), u); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(testCtx(t)); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// The schema and the small tables come first; the users table's
	// leaves, written last, are the last pages.
	const page = 4096
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", page/4))
	for off := fi.Size() - 8*page; off < fi.Size(); off += page {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	s = openPath(t, path)
	_, err = s.ListUsers(testCtx(t))
	t.Logf("ListUsers: %v", err)
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("ListUsers on damaged pages: error %v, want ErrUnavailable naming the file and the damage", err)
	}
	if _, err := s.ListRules(testCtx(t)); err != nil {
		t.Errorf("ListRules (undamaged table): %v", err)
	}
}

// TestWriteLockHeld: while another process holds the write lock, writes
// fail closed after the timeout with a clear message, reads go on (WAL),
// and Open still works.
func TestWriteLockHeld(t *testing.T) {
	const timeout = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "regctl.db")
	s := openPath(t, path, WithTimeout(timeout))
	if err := s.CreateUser(testCtx(t), &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRule(testCtx(t), acl.Rule{Seq: 1, Actions: []string{}}); err != nil {
		t.Fatal(err)
	}
	conn, err := rawDB(t, path).Conn(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustExec(t, conn, "BEGIN IMMEDIATE")

	// In an order that succeeds once the lock is released.
	writes := []struct {
		name string
		call func(context.Context) error
	}{
		{"CreateUser", func(c context.Context) error {
			return s.CreateUser(c, &store.User{Username: "bob", PasswordHash: "h"})
		}},
		{"UpdateUser", func(c context.Context) error {
			_, err := s.UpdateUser(c, "alice", func(u *store.User) error { u.Disabled = true; return nil })
			return err
		}},
		{"DeleteUser", func(c context.Context) error { return s.DeleteUser(c, "alice") }},
		{"AddRule", func(c context.Context) error { return s.AddRule(c, acl.Rule{Seq: 2, Actions: []string{}}) }},
		{"RemoveRule", func(c context.Context) error { return s.RemoveRule(c, 1) }},
		{"ReplaceRules", func(c context.Context) error { return s.ReplaceRules(c, nil) }},
	}
	var wg sync.WaitGroup
	for _, w := range writes {
		name, call := w.name, w.call
		wg.Go(func() {
			start := time.Now()
			err := call(context.Background())
			elapsed := time.Since(start)
			switch {
			case !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "write lock"):
				t.Errorf("%s while locked: error %v, want ErrUnavailable naming the write lock", name, err)
			case elapsed > timeout+2*time.Second:
				t.Errorf("%s took %v, want about %v", name, elapsed, timeout)
			default:
				t.Logf("%s: %v after %v", name, err, elapsed.Round(time.Millisecond))
			}
		})
	}
	wg.Wait()

	if _, err := s.GetUser(testCtx(t), "alice"); err != nil {
		t.Errorf("GetUser while locked: %v", err)
	}
	if _, err := s.ListUsers(testCtx(t)); err != nil {
		t.Errorf("ListUsers while locked: %v", err)
	}
	if _, err := s.ListRules(testCtx(t)); err != nil {
		t.Errorf("ListRules while locked: %v", err)
	}
	if _, err := s.RulesVersion(testCtx(t)); err != nil {
		t.Errorf("RulesVersion while locked: %v", err)
	}
	if err := s.Ping(testCtx(t)); err != nil {
		t.Errorf("Ping while locked: %v", err)
	}
	other, err := Open(testCtx(t), path, WithTimeout(timeout))
	if err != nil {
		t.Errorf("Open while locked: %v", err)
	} else {
		_ = other.Close(context.Background())
	}

	mustExec(t, conn, "ROLLBACK")
	for _, w := range writes {
		if err := w.call(testCtx(t)); err != nil {
			t.Errorf("%s after the lock was released: %v", w.name, err)
		}
	}
}

// TestTwoHandles simulates the CLI and the server: two stores on one file,
// several goroutines each, writing at once. Every update must survive and
// no "database is locked" may surface.
func TestTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	a, b := openPath(t, path), openPath(t, path)
	ctx := testCtx(t)
	if err := a.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	const workers, updates = 4, 25
	var wg sync.WaitGroup
	for h, s := range []*Store{a, b} {
		for w := range workers {
			wg.Go(func() {
				for i := range updates {
					v := fmt.Sprintf("h%d-w%d-%02d", h, w, i)
					_, err := s.UpdateUser(ctx, "alice", func(u *store.User) error {
						if u.Labels == nil {
							u.Labels = map[string][]string{}
						}
						u.Labels["n"] = append(u.Labels["n"], v)
						return nil
					})
					if err != nil {
						t.Errorf("UpdateUser: %v", err)
						return
					}
					seq := int64(h*10000 + w*100 + i)
					if err := s.AddRule(ctx, acl.Rule{Seq: seq, Actions: []string{"pull"}}); err != nil {
						t.Errorf("AddRule: %v", err)
						return
					}
					if _, err := s.GetUser(ctx, "alice"); err != nil {
						t.Errorf("GetUser: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	u, err := b.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	const total = 2 * workers * updates
	vals := u.Labels["n"]
	if len(vals) != total || len(slices.Compact(slices.Sorted(slices.Values(vals)))) != total {
		t.Errorf("label n has %d values (%d distinct), want %d distinct: updates lost or doubled", len(vals), len(slices.Compact(slices.Sorted(slices.Values(vals)))), total)
	}
	rules, err := a.ListRules(ctx)
	if err != nil || len(rules) != total {
		t.Errorf("ListRules = %d rules, %v; want %d", len(rules), err, total)
	}
}

func TestRulesVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	s, other := openPath(t, path), openPath(t, path)
	ctx := testCtx(t)
	last := int64(-1)
	check := func(what string, changed bool) {
		t.Helper()
		v, err := other.RulesVersion(ctx)
		if err != nil {
			t.Fatalf("RulesVersion: %v", err)
		}
		switch {
		case changed && v <= last:
			t.Errorf("after %s, RulesVersion = %d, want more than %d", what, v, last)
		case !changed && v != last:
			t.Errorf("after %s, RulesVersion = %d, want %d (unchanged)", what, v, last)
		}
		last = v
	}
	check("Open", true)
	rule := acl.Rule{Seq: 1, Actions: []string{"pull"}}
	if err := s.AddRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	check("AddRule", true)
	_ = s.AddRule(ctx, rule)
	check("a failed AddRule", false)
	if err := s.ReplaceRules(ctx, []acl.Rule{rule, {Seq: 2, Actions: []string{}}}); err != nil {
		t.Fatal(err)
	}
	check("ReplaceRules", true)
	_ = s.ReplaceRules(ctx, []acl.Rule{rule, rule})
	check("a failed ReplaceRules", false)
	if err := s.RemoveRule(ctx, 2); err != nil {
		t.Fatal(err)
	}
	check("RemoveRule", true)
	_ = s.RemoveRule(ctx, 2)
	check("a failed RemoveRule", false)
	if err := s.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	check("CreateUser", false)
	mustExec(t, rawDB(t, path), "UPDATE rules SET comment = 'edited by hand'")
	check("an edit with another program", true)
	if err := s.ReplaceRules(ctx, nil); err != nil {
		t.Fatal(err)
	}
	check("ReplaceRules(nil)", true)
}

// TestRoundTrip covers what the conformance suite does not: nil versus
// empty lists, empty label value lists, time zones and sub-millisecond
// times.
func TestRoundTrip(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	zone := time.FixedZone("X", -7*3600)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 678_999_999, zone)
	expMS := time.Date(2030, 1, 2, 10, 4, 5, 678_000_000, time.UTC)
	u := &store.User{
		Username:     "alice",
		PasswordHash: "$2a$10$x",
		Labels:       map[string][]string{"z": {"3", "1", "2"}, "empty": {}, "nil": nil},
		Grants: []acl.Grant{
			{Pattern: "b/*", Actions: []string{"push", "pull"}, ExpiresAt: &exp},
			{Pattern: "a/*", Actions: []string{}},
			{Pattern: "c/*"},
		},
		ExpiresAt: &exp,
		CreatedAt: exp,
	}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if !u.CreatedAt.Equal(expMS) || u.CreatedAt.Location() != time.UTC {
		t.Errorf("CreateUser set CreatedAt = %v, want %v", u.CreatedAt, expMS)
	}
	got, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string][]string{"z": {"3", "1", "2"}, "empty": {}, "nil": {}}
	if fmt.Sprintf("%#v", got.Labels) != fmt.Sprintf("%#v", wantLabels) {
		t.Errorf("Labels = %#v, want %#v", got.Labels, wantLabels)
	}
	if len(got.Grants) != 3 || got.Grants[0].Pattern != "b/*" || !slices.Equal(got.Grants[0].Actions, []string{"push", "pull"}) ||
		got.Grants[1].Actions == nil || len(got.Grants[1].Actions) != 0 || got.Grants[2].Actions != nil {
		t.Errorf("Grants = %#v, want order and nil/empty actions kept", got.Grants)
	}
	for name, tp := range map[string]*time.Time{"ExpiresAt": got.ExpiresAt, "grant ExpiresAt": got.Grants[0].ExpiresAt} {
		if tp == nil || !tp.Equal(expMS) || tp.Location() != time.UTC {
			t.Errorf("%s = %v, want %v in UTC", name, tp, expMS)
		}
	}
	if !got.CreatedAt.Equal(expMS) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, expMS)
	}

	// A user whose times were cleared reads back zero.
	got, err = s.UpdateUser(ctx, "alice", func(u *store.User) error { u.CreatedAt = time.Time{}; return nil })
	if err != nil || !got.CreatedAt.IsZero() {
		t.Fatalf("UpdateUser(zero CreatedAt) = %v, %v", got, err)
	}
	if got, _ := s.GetUser(ctx, "alice"); !got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want zero, set", got.CreatedAt, got.UpdatedAt)
	}

	rules := []acl.Rule{
		{Seq: 1, Match: acl.Match{Account: ptr("")}, Actions: nil, Comment: "nil actions"},
		{Seq: 2, Match: acl.Match{Labels: map[string]string{}}, Actions: []string{}},
		{Seq: 3, Actions: []string{"*"}, ExpiresAt: &exp},
	}
	if err := s.ReplaceRules(ctx, rules); err != nil {
		t.Fatal(err)
	}
	gotRules, err := s.ListRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotRules) != 3 || gotRules[0].Actions != nil || gotRules[0].Match.Account == nil || *gotRules[0].Match.Account != "" ||
		gotRules[1].Actions == nil || gotRules[1].Match.Labels != nil || !gotRules[2].ExpiresAt.Equal(expMS) {
		t.Errorf("ListRules = %#v", gotRules)
	}
}

func TestInvalidUTF8(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	bad := string([]byte{0xff, 'x'})
	err := s.CreateUser(ctx, &store.User{Username: "alice", Labels: map[string][]string{"k": {bad}}})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateUser(label value not UTF-8) error = %v, want ErrInvalid", err)
	}
	err = s.CreateUser(ctx, &store.User{Username: "alice", Grants: []acl.Grant{{Pattern: bad}}})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateUser(grant not UTF-8) error = %v, want ErrInvalid", err)
	}
	err = s.AddRule(ctx, acl.Rule{Seq: 1, Match: acl.Match{Name: &bad}, Actions: []string{}})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AddRule(match not UTF-8) error = %v, want ErrInvalid", err)
	}
	// Columns that are not JSON keep any bytes.
	if err := s.CreateUser(ctx, &store.User{Username: "bob", PasswordHash: bad}); err != nil {
		t.Fatal(err)
	}
	if u, err := s.GetUser(ctx, "bob"); err != nil || u.PasswordHash != bad {
		t.Errorf("GetUser = %+v, %v", u, err)
	}
}

// TestDecodeErrors: rows written by hand that do not decode are errors
// naming the rule's seq or the user.
func TestDecodeErrors(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	for _, c := range []struct {
		match, actions string
		want           string
	}{
		{`{"acount":"alice"}`, `["pull"]`, `rule seq 7: match: unknown match key "acount"`},
		{`{"name":5}`, `["pull"]`, `rule seq 7: match: name: `},
		{`{"labels":["a"]}`, `["pull"]`, `rule seq 7: match: labels: `},
		{`[]`, `["pull"]`, `rule seq 7: match: `},
		{`{}`, `"pull"`, `rule seq 7: actions: `},
	} {
		mustExec(t, s.writer, "DELETE FROM rules")
		mustExec(t, s.writer, "INSERT INTO rules (seq, match, actions) VALUES (7, ?, ?)", c.match, c.actions)
		_, err := s.ListRules(ctx)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("ListRules with match %s, actions %s: error %v, want one saying %q", c.match, c.actions, err, c.want)
		}
	}
	for _, c := range []struct{ labels, grants, want string }{
		{`{"team":"a"}`, `[]`, `decode user "alice": labels: `},
		{`{}`, `[{"pattern":"a/*","actons":["pull"]}]`, `decode user "alice": grants: `},
	} {
		mustExec(t, s.writer, "DELETE FROM users")
		mustExec(t, s.writer, "INSERT INTO users (username, labels, grants) VALUES ('alice', ?, ?)", c.labels, c.grants)
		for name, call := range map[string]func() error{
			"GetUser":   func() error { _, err := s.GetUser(ctx, "alice"); return err },
			"ListUsers": func() error { _, err := s.ListUsers(ctx); return err },
			"UpdateUser": func() error {
				_, err := s.UpdateUser(ctx, "alice", func(*store.User) error { return nil })
				return err
			},
		} {
			if err := call(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s with labels %s, grants %s: error %v, want one saying %q", name, c.labels, c.grants, err, c.want)
			}
		}
	}
}

// TestUpdateUserFnPanics: a panic in fn rolls the transaction back and
// leaves the store usable.
func TestUpdateUserFnPanics(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	if err := s.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic in fn did not propagate")
			}
		}()
		_, _ = s.UpdateUser(ctx, "alice", func(_ *store.User) error { panic("boom") })
	}()
	got, err := s.UpdateUser(ctx, "alice", func(u *store.User) error { u.Disabled = true; return nil })
	if err != nil || !got.Disabled {
		t.Errorf("UpdateUser after a panic = %+v, %v", got, err)
	}
}

// TestUpdateUserFnTooSlow: an fn that outlives the deadline writes
// nothing and the error is a timeout.
func TestUpdateUserFnTooSlow(t *testing.T) {
	s := openTest(t, WithTimeout(200*time.Millisecond))
	ctx := testCtx(t)
	if err := s.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpdateUser(ctx, "alice", func(u *store.User) error {
		time.Sleep(400 * time.Millisecond)
		u.Disabled = true
		return nil
	})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("UpdateUser with a slow fn: error %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if u, err := s.GetUser(ctx, "alice"); err != nil || u.Disabled {
		t.Errorf("after the timed-out update, user = %+v, %v; want it unchanged", u, err)
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := Open(testCtx(t), filepath.Join(t.TempDir(), "regctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Close(testCtx(t)); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, err := s.RulesVersion(testCtx(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("RulesVersion after Close: error %v, want ErrUnavailable", err)
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := Open(testCtx(t), filepath.Join(t.TempDir(), "x.db"), WithTimeout(0)); err == nil {
		t.Error("Open with a zero timeout succeeded")
	}
}

// TestRuleChangesSince replays the change feed into a map after every kind
// of change, through the store and by hand, and checks it against
// ListRules each time.
func TestRuleChangesSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	s, reader := openPath(t, path), openPath(t, path)
	raw := rawDB(t, path)
	ctx := testCtx(t)
	var cur store.RuleCursor
	mirror := map[int64]acl.Rule{}
	replay := func(what string, wantFull, wantChange bool) {
		t.Helper()
		ch, err := reader.RuleChangesSince(ctx, cur)
		if err != nil {
			t.Fatalf("after %s: RuleChangesSince: %v", what, err)
		}
		if ch.Full != wantFull {
			t.Errorf("after %s: Full = %v, want %v", what, ch.Full, wantFull)
		}
		if ch.Unchanged(cur) == wantChange {
			t.Errorf("after %s: Unchanged = %v, want %v (%+v)", what, !wantChange, !wantChange, ch)
		}
		if ch.Full {
			clear(mirror)
		}
		for _, seq := range ch.Removed {
			delete(mirror, seq)
		}
		for _, r := range ch.Rules {
			mirror[r.Seq] = r
		}
		cur = ch.Cursor
		all, err := s.ListRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.SortedFunc(maps.Values(mirror), func(a, b acl.Rule) int { return cmp.Compare(a.Seq, b.Seq) })
		if len(all) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, all) {
			t.Errorf("after %s: replayed changes give\n%+v\nwant\n%+v", what, got, all)
		}
	}
	rule := func(seq int64, actions ...string) acl.Rule {
		return acl.Rule{Seq: seq, Actions: append([]string{}, actions...)}
	}
	replay("Open", true, true)
	replay("nothing", false, false)
	if err := s.AddRule(ctx, rule(1, "pull")); err != nil {
		t.Fatal(err)
	}
	replay("AddRule", false, true)
	if err := s.ReplaceRules(ctx, []acl.Rule{rule(1, "push"), rule(2), rule(3, "*")}); err != nil {
		t.Fatal(err)
	}
	replay("ReplaceRules", false, true)
	replay("nothing", false, false)
	if err := s.RemoveRule(ctx, 2); err != nil {
		t.Fatal(err)
	}
	replay("RemoveRule", false, true)
	if err := s.AddRule(ctx, rule(2, "pull")); err != nil {
		t.Fatal(err)
	}
	replay("AddRule of a removed seq", false, true)
	mustExec(t, raw, "UPDATE rules SET comment = 'by hand' WHERE seq = 3")
	replay("an edit by hand", false, true)
	mustExec(t, raw, "UPDATE rules SET seq = 30 WHERE seq = 3")
	replay("a seq changed by hand", false, true)
	mustExec(t, raw, "DELETE FROM rules WHERE seq = 1")
	replay("a delete by hand", false, true)
	mustExec(t, raw, `INSERT INTO rules (seq, match, actions) VALUES (7, '{"account":"bob"}', '["pull"]')`)
	replay("an insert by hand", false, true)
	mustExec(t, raw, "UPDATE rules SET version = version")
	replay("a no-op by hand", false, false)
	if err := s.ReplaceRules(ctx, nil); err != nil {
		t.Fatal(err)
	}
	replay("ReplaceRules(nil)", false, true)

	ahead := cur
	ahead.Version += 100
	if ch, err := reader.RuleChangesSince(ctx, ahead); err != nil || !ch.Full || ch.Cursor != cur {
		t.Errorf("a cursor ahead of the database: %+v, %v; want Full at %+v", ch, err, cur)
	}
	other := openTest(t)
	if err := other.AddRule(ctx, rule(5, "pull")); err != nil {
		t.Fatal(err)
	}
	ch, err := other.RuleChangesSince(ctx, cur)
	if err != nil || !ch.Full || len(ch.Rules) != 1 || ch.Cursor.Epoch == cur.Epoch {
		t.Errorf("a cursor of another database: %+v, %v; want Full with its one rule and another epoch", ch, err)
	}
}

// TestMigrateRuleHistory opens a database written at schema version 1
// (before the rule history) that holds rules: they keep their content, and
// the change feed starts from them.
func TestMigrateRuleHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	raw := rawDB(t, path)
	mustExec(t, raw, fmt.Sprintf("PRAGMA application_id = %d", applicationID))
	mustExec(t, raw, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, applied_at TEXT NOT NULL) STRICT")
	mustExec(t, raw, migrations[0])
	mustExec(t, raw, "INSERT INTO schema_migrations (version, applied_at) VALUES (1, '2026-01-01T00:00:00Z')")
	mustExec(t, raw, `INSERT INTO rules (seq, match, actions, comment) VALUES (1, '{"account":"bob"}', '["pull"]', 'old')`)

	s := openPath(t, path)
	ctx := testCtx(t)
	ch, err := s.RuleChangesSince(ctx, store.RuleCursor{})
	if err != nil || !ch.Full || len(ch.Rules) != 1 || ch.Rules[0].Comment != "old" {
		t.Fatalf("first read after the migration: %+v, %v; want Full with the old rule", ch, err)
	}
	if err := s.AddRule(ctx, acl.Rule{Seq: 2, Actions: []string{}}); err != nil {
		t.Fatal(err)
	}
	next, err := s.RuleChangesSince(ctx, ch.Cursor)
	if err != nil || next.Full || len(next.Rules) != 1 || next.Rules[0].Seq != 2 || len(next.Removed) != 0 {
		t.Errorf("after AddRule: %+v, %v; want rule 2 alone", next, err)
	}
}
