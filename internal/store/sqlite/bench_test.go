package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// benchUsers is the number of users in the benchmark database.
const benchUsers = 100_000

var (
	fixtures struct {
		once sync.Once
		dir  string
		err  error
	}
	bigDB struct {
		once sync.Once
		path string
		err  error
	}
)

// fixtureDir returns a directory shared by the tests and benchmarks of this
// process (mode 0755, for helpers running as another user); TestMain
// removes it.
func fixtureDir() (string, error) {
	fixtures.once.Do(func() {
		fixtures.dir, fixtures.err = os.MkdirTemp("", "regctl-sqlite-test-")
		if fixtures.err == nil {
			fixtures.err = os.Chmod(fixtures.dir, 0o755)
		}
	})
	return fixtures.dir, fixtures.err
}

// removeFixtures runs after every test and benchmark has returned.
func removeFixtures() {
	if fixtures.dir != "" {
		_ = os.RemoveAll(fixtures.dir)
	}
}

func benchName(i int) string { return fmt.Sprintf("user%06d@example.com", i) }

func benchUser(i int, now time.Time) *store.User {
	exp := now.Add(time.Duration(i) * time.Minute)
	return &store.User{
		Username:     benchName(i),
		PasswordHash: "$2a$10$abcdefghijklmnopqrstuuJ5Q0o7VgJmE4bEBnjbR1M5BqV7QAnPK",
		Labels:       map[string][]string{"team": {fmt.Sprintf("team%d", i%50)}, "group": {"dev", "ops"}},
		Grants: []acl.Grant{
			{Pattern: fmt.Sprintf("team%d/*", i%50), Actions: []string{"pull", "push"}},
			{Pattern: "library/*", Actions: []string{"pull"}, ExpiresAt: &exp},
		},
		CreatedAt: now,
		UpdatedAt: now,
	}
}

// bigDBPath returns a database with benchUsers users and 100 rules, built
// once per process with one bulk transaction.
func bigDBPath(b *testing.B) string {
	b.Helper()
	if testing.Short() {
		b.Skip("building a database of 100,000 users; skipped with -short")
	}
	bigDB.once.Do(func() {
		dir, err := fixtureDir()
		if err != nil {
			bigDB.err = err
			return
		}
		bigDB.path = filepath.Join(dir, "big.db")
		bigDB.err = buildBigDB(bigDB.path)
	})
	if bigDB.err != nil {
		b.Fatal(bigDB.err)
	}
	return bigDB.path
}

func buildBigDB(path string) error {
	ctx := context.Background()
	start := time.Now()
	s, err := Open(ctx, path, WithTimeout(10*time.Minute))
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	now := store.Truncate(time.Now())
	rules := make([]acl.Rule, 100)
	for i := range rules {
		rules[i] = acl.Rule{Seq: int64(i), Match: acl.Match{Account: ptr(benchName(i))}, Actions: []string{"pull"}}
	}
	if err := s.ReplaceRules(ctx, rules); err != nil {
		return err
	}
	err = s.write(ctx, "build fixture", func(ctx context.Context, tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range benchUsers {
			u := benchUser(i, now)
			row, err := encodeUser(u)
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, u.Username, u.PasswordHash, row.labels, row.grants,
				row.expiresAt, u.Disabled, row.createdAt, row.updatedAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fi, _ := os.Stat(path)
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	fmt.Fprintf(os.Stderr, "built %d users in %v (%d bytes before checkpoint)\n", benchUsers, time.Since(start).Round(time.Millisecond), size)
	return nil
}

func openBig(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), bigDBPath(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// BenchmarkGetUser looks up random users among 100,000.
func BenchmarkGetUser(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.GetUser(ctx, benchName(r.IntN(benchUsers))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetUserParallel is BenchmarkGetUser from GOMAXPROCS goroutines.
func BenchmarkGetUserParallel(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			if _, err := s.GetUser(ctx, benchName(r.IntN(benchUsers))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetUserNotFound looks up names that do not exist.
func BenchmarkGetUserNotFound(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetUser(ctx, "nobody"); err == nil {
			b.Fatal("found nobody")
		}
	}
}

// BenchmarkUpdateUser updates random users among 100,000: one write
// transaction each.
func BenchmarkUpdateUser(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	for b.Loop() {
		_, err := s.UpdateUser(ctx, benchName(r.IntN(benchUsers)), func(u *store.User) error {
			u.Disabled = !u.Disabled
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListUsers lists all 100,000 users.
func BenchmarkListUsers(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		users, err := s.ListUsers(ctx)
		if err != nil || len(users) != benchUsers {
			b.Fatalf("ListUsers: %d users, %v", len(users), err)
		}
	}
}

// BenchmarkListRules lists 100 rules.
func BenchmarkListRules(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ListRules(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRulesVersion is the token server's change poll.
func BenchmarkRulesVersion(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.RulesVersion(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
