package token

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/mongo"
	"github.com/regctl/regctl/internal/testenv"
)

// BenchmarkSharedLimit is the cost of a token request with the login
// limits held in the store (shared) against the local buckets alone
// (local), over the same store: SQLite, and MongoDB-wire when
// REGCTL_TEST_MONGO_URI names a server. Each request comes from a new
// address for a new name, so no limit is reached:
//   - cached: a correct password answered from the credential cache, the
//     common case, which never touches the attempt log;
//   - ok: a correct password checked with bcrypt (the credential cache
//     emptied first), which adds records and removes them again;
//   - failed: an unknown user (the dummy bcrypt), which adds records and
//     keeps them.
//
// bcrypt runs at the minimum cost here, so the store's share is much
// larger than it is at the cost users are hashed at (docs/performance.md).
func BenchmarkSharedLimit(b *testing.B) {
	type backend struct {
		name string
		st   Store
	}
	backends := []backend{{"sqlite", openSharedSQLite(b, 1)[0]}}
	if uri := os.Getenv("REGCTL_TEST_MONGO_URI"); uri != "" {
		backends = append(backends, backend{"mongo", openBenchMongo(b, uri)})
	}
	for _, be := range backends {
		for _, mode := range []string{"local", "shared"} {
			clk := testenv.NewClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
			f := newStoreFixture(b, be.st, clk)
			if mode == "local" {
				f.srv.shared = nil
			} else if f.srv.shared == nil {
				b.Fatalf("%s: no shared limits", be.name)
			}
			seq := 0
			addr := func() string {
				seq++
				return fmt.Sprintf("10.%d.%d.%d", seq>>16&255, seq>>8&255, seq&255)
			}
			for _, kind := range []string{"cached", "ok", "failed"} {
				b.Run(be.name+"/"+kind+"/"+mode, func(b *testing.B) {
					user, pass, want := "waldi", "waldi-secret", http.StatusOK
					if kind == "failed" {
						want = http.StatusUnauthorized
					}
					if rec := viaProxy(f, addr(), user, pass); rec.Code != http.StatusOK {
						b.Fatalf("first login: %d", rec.Code)
					}
					b.ReportAllocs()
					for b.Loop() {
						u := user
						switch kind {
						case "ok":
							f.srv.auth.creds.Remove(user)
						case "failed":
							u = fmt.Sprintf("nobody%d", seq)
						}
						if rec := viaProxy(f, addr(), u, pass); rec.Code != want {
							b.Fatalf("status %d, want %d", rec.Code, want)
						}
					}
				})
			}
		}
	}
}

// openBenchMongo opens a store on a new database of uri holding the
// fixture's users and rules, and empties it at cleanup.
func openBenchMongo(b *testing.B, uri string) *mongo.Store {
	r := make([]byte, 6)
	_, _ = rand.Read(r)
	db := "regctl_bench_" + hex.EncodeToString(r)
	ctx := b.Context()
	st, err := mongo.Open(ctx, uri, mongo.WithDatabase(db), mongo.WithTimeout(20*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx := context.Background()
		_ = st.DeleteUser(ctx, "waldi")
		_ = st.ReplaceRules(ctx, nil)
		_ = st.PruneAttempts(ctx, time.Now().Add(24*time.Hour))
		_ = st.Close(ctx)
	})
	if err := st.CreateUser(ctx, &store.User{Username: "waldi", PasswordHash: hash(b, "waldi-secret"),
		Labels: map[string][]string{"full-access": {"test/*"}}}); err != nil {
		b.Fatal(err)
	}
	if err := st.ReplaceRules(ctx, []acl.Rule{{Seq: 10, Match: acl.Match{Name: ptr("${labels:full-access}")}, Actions: []string{"*"}}}); err != nil {
		b.Fatal(err)
	}
	return st
}
