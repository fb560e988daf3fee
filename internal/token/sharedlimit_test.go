package token

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
	"github.com/regctl/regctl/internal/testenv"
)

// openSharedSQLite opens n handles on one new SQLite file holding the
// fixture's users and rules, as n token servers on one host have.
func openSharedSQLite(t testing.TB, n int) []*sqlite.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "regctl.db")
	var sts []*sqlite.Store
	for range n {
		st, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		sts = append(sts, st)
	}
	ctx := t.Context()
	for _, u := range []store.User{
		{Username: "waldi", PasswordHash: hash(t, "waldi-secret"), Labels: map[string][]string{"full-access": {"test/*"}}},
		{Username: "reader", PasswordHash: hash(t, "reader-secret"), Labels: map[string][]string{"read-only-access": {"prod/*"}}},
	} {
		if err := sts[0].CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
	}
	if err := sts[0].ReplaceRules(ctx, []acl.Rule{
		{Seq: 10, Match: acl.Match{Name: ptr("${labels:full-access}")}, Actions: []string{"*"}},
	}); err != nil {
		t.Fatal(err)
	}
	return sts
}

// newStoreFixture is a fixture whose server reads st, on the clock clk
// (shared by the servers of one test).
func newStoreFixture(t testing.TB, st Store, clk *testenv.Clock, opts ...func(*config.TokenServer)) *fixture {
	t.Helper()
	cfg := config.TokenServerDefaults()
	cfg.Issuer, cfg.Services = "regctl-test", []string{testService}
	cfg.ReloadInterval = time.Second
	cfg.BcryptCost = bcrypt.MinCost
	cfg.TrustedProxies = nil
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg, st, testKeys(t), slog.New(slog.NewTextHandler(io.Discard, nil)), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.rules.reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, srv: srv, h: srv.Handler(), clock: clk}
	trustProxy(f)
	return f
}

func newSharedFixtures(t testing.TB, n int) []*fixture {
	clk := testenv.NewClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	var fs []*fixture
	for _, st := range openSharedSQLite(t, n) {
		fs = append(fs, newStoreFixture(t, st, clk))
	}
	return fs
}

func totalBcrypts(fs []*fixture) (n uint64) {
	for _, f := range fs {
		n += bcrypts(f)
	}
	return n
}

// TestSharedLimitTwoServers: wrong passwords from one address, spread over
// two token servers on one SQLite file, sequentially and all at once,
// reach bcrypt at most the client's burst times in all; with the shared
// limits off, each server would admit its own burst.
func TestSharedLimitTwoServers(t *testing.T) {
	for _, tt := range []struct {
		name     string
		parallel bool
		local    bool // shared limits off: the limits multiply
	}{
		{"sequential", false, false},
		{"parallel", true, false},
		{"local-only", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := newSharedFixtures(t, 2)
			if tt.local {
				for _, f := range fs {
					f.srv.shared = nil
				}
			}
			burst := fs[0].srv.cfg.FailLimitIP.Burst
			const client = "198.51.100.7"
			total := 4 * burst
			var got401, got429, other atomic.Int64
			try := func(i int) {
				// A different account each time: only the client's
				// limit applies.
				switch rec := viaProxy(fs[i%2], client, fmt.Sprintf("acct%d", i), fmt.Sprintf("guess%d", i)); rec.Code {
				case http.StatusUnauthorized:
					got401.Add(1)
				case http.StatusTooManyRequests:
					got429.Add(1)
				default:
					other.Add(1)
					t.Errorf("attempt %d: status %d %s", i, rec.Code, rec.Body)
				}
			}
			if tt.parallel {
				var wg sync.WaitGroup
				for i := range total {
					wg.Go(func() { try(i) })
				}
				wg.Wait()
			} else {
				for i := range total {
					try(i)
				}
			}
			work := totalBcrypts(fs)
			t.Logf("%d wrong passwords from one address over 2 servers: %d answered 401, %d answered 429; %d bcrypt comparisons (burst %d)",
				total, got401.Load(), got429.Load(), work, burst)
			want := uint64(burst)
			if tt.local {
				want = 2 * uint64(burst)
			}
			if work != want || got401.Load() != int64(want) {
				t.Errorf("%d bcrypt comparisons, %d failures answered; want %d", work, got401.Load(), want)
			}
			if tt.local {
				return
			}
			// Both servers refuse the client now, with the right password
			// too, and without bcrypt.
			for i, f := range fs {
				if rec := viaProxy(f, client, "waldi", "waldi-secret"); rec.Code != http.StatusTooManyRequests {
					t.Errorf("server %d: correct password from the limited client: status %d, want 429", i, rec.Code)
				}
			}
			if totalBcrypts(fs) != work {
				t.Error("a 429 ran bcrypt")
			}
			// Another client is not affected, and the limit ends with its
			// window.
			if rec := viaProxy(fs[1], "198.51.100.8", "waldi", "waldi-secret"); rec.Code != http.StatusOK {
				t.Errorf("another client: status %d", rec.Code)
			}
			advance(t, fs[0], window(fs[0].srv.cfg.FailLimitIP))
			if err := fs[1].srv.rules.reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			for i, f := range fs {
				if rec := viaProxy(f, client, "reader", "reader-secret"); rec.Code != http.StatusOK {
					t.Errorf("server %d after the window: status %d, want 200", i, rec.Code)
				}
			}
		})
	}
}

// TestSharedLimitSuccessGivesBack: successful logins that reach bcrypt do
// not use up the shared limit: their records are removed.
func TestSharedLimitSuccessGivesBack(t *testing.T) {
	fs := newSharedFixtures(t, 2)
	burst := fs[0].srv.cfg.FailLimitIP.Burst
	for i := range 3 * burst {
		f := fs[i%2]
		f.srv.auth.creds.Purge() // every login reaches bcrypt
		if rec := viaProxy(f, "192.0.2.30", "waldi", "waldi-secret"); rec.Code != http.StatusOK {
			t.Fatalf("login %d: status %d", i, rec.Code)
		}
	}
	if n := countAttempts(t, fs[0], "ip 192.0.2.30/32"); n != 0 {
		t.Errorf("%d records after successful logins, want 0", n)
	}
}

// countAttempts is the number of unexpired records under key, found by
// adding one and removing it.
func countAttempts(t *testing.T, f *fixture, key string) int {
	t.Helper()
	now := f.clock.Now()
	ids, counts, err := f.srv.shared.attempts.AddAttempts(t.Context(), now, []store.Attempt{{Key: key, ExpiresAt: now.Add(time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.shared.attempts.RemoveAttempts(t.Context(), ids); err != nil {
		t.Fatal(err)
	}
	return counts[0] - 1
}

// flakyAttempts is a SQLite store whose attempt log can be made to fail
// as an unreachable store does, while users and rules still answer.
type flakyAttempts struct {
	*sqlite.Store
	down atomic.Bool
}

var errAttemptsDown = fmt.Errorf("test: %w", store.ErrUnavailable)

func (s *flakyAttempts) AddAttempts(ctx context.Context, now time.Time, as []store.Attempt) ([]string, []int, error) {
	if s.down.Load() {
		return nil, nil, errAttemptsDown
	}
	return s.Store.AddAttempts(ctx, now, as)
}

// TestSharedLimitStoreDown: with the attempt log unreachable, password
// logins that would reach bcrypt fail closed with 503 and no bcrypt, and
// take no local token; cached logins and refresh tokens keep working.
func TestSharedLimitStoreDown(t *testing.T) {
	sts := openSharedSQLite(t, 1)
	st := &flakyAttempts{Store: sts[0]}
	clk := testenv.NewClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	f := newStoreFixture(t, st, clk)
	if f.srv.shared == nil {
		t.Fatal("the shared limits are off over a store with an attempt log")
	}
	rec := f.get("waldi", "waldi-secret", url.Values{"service": {testService}, "offline_token": {"true"}})
	resp, _, _ := decode(t, rec)

	st.down.Store(true)
	b := bcrypts(f)
	burst := f.srv.cfg.FailLimitIP.Burst
	for i := range 2 * burst {
		rec := viaProxy(f, "198.51.100.9", "reader", fmt.Sprintf("guess%d", i))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("wrong password with the attempt log down: status %d, Retry-After %q; want 503 with Retry-After",
				rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	f.srv.auth.creds.Remove("reader")
	if rec := viaProxy(f, "198.51.100.9", "reader", "reader-secret"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("uncached correct password with the attempt log down: status %d, want 503", rec.Code)
	}
	if got := bcrypts(f) - b; got != 0 {
		t.Errorf("%d bcrypt comparisons with the attempt log down, want 0", got)
	}
	if rec := f.get("waldi", "waldi-secret", scopes()); rec.Code != http.StatusOK {
		t.Errorf("cached login with the attempt log down: status %d, want 200", rec.Code)
	}
	rec = f.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {resp.RefreshToken}, "service": {testService}})
	if rec.Code != http.StatusOK {
		t.Errorf("refresh token with the attempt log down: status %d, want 200", rec.Code)
	}

	// The refusals spent no local token: back up, the client has its
	// whole burst.
	st.down.Store(false)
	for i := range burst {
		if rec := viaProxy(f, "198.51.100.9", "reader", fmt.Sprintf("again%d", i)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d after recovery: status %d, want 401", i, rec.Code)
		}
	}
	if rec := viaProxy(f, "198.51.100.9", "reader", "x"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("after the burst: status %d, want 429", rec.Code)
	}
}

// TestSharedLimitAccount: guesses at one account from many addresses,
// each below the client limit, spread over two servers, are held to the
// account's burst plus the not-a-lockout probes (one per address and
// server); the owner still logs in from a clean address.
func TestSharedLimitAccount(t *testing.T) {
	fs := newSharedFixtures(t, 2)
	burst := fs[0].srv.cfg.FailLimitAccount.Burst
	const addrs = 60
	failures := 0
	for i := range addrs {
		ip := fmt.Sprintf("198.51.%d.%d", 101+i/200, i%200+1)
		for j := range 4 {
			switch rec := viaProxy(fs[j%2], ip, "waldi", fmt.Sprintf("guess%d-%d", i, j)); rec.Code {
			case http.StatusUnauthorized:
				failures++
			case http.StatusTooManyRequests:
			default:
				t.Fatalf("guess: %d", rec.Code)
			}
		}
	}
	over := failures - burst
	t.Logf("%d guesses from %d addresses over 2 servers: %d reached authentication (account burst %d)", 4*addrs, addrs, failures, burst)
	if over <= 0 || over > 2*(addrs-burst/4) {
		t.Errorf("%d failures reached authentication: want more than the burst %d (probes) and at most %d",
			failures, burst, burst+2*(addrs-burst/4))
	}
	if rec := viaProxy(fs[1], "192.0.2.44", "waldi", "waldi-secret"); rec.Code != http.StatusOK {
		t.Errorf("the owner from a clean address: status %d, want 200", rec.Code)
	}
}
