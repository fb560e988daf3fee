package token

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/regctl/regctl/internal/config"
)

// proxyAddr is the reverse proxy the limit tests trust.
const proxyAddr = "10.0.0.1"

// trustProxy makes the fixture's server believe X-Forwarded-For from
// proxyAddr, as regctl serve --trusted-proxy does behind nginx.
func trustProxy(f *fixture) {
	f.srv.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(proxyAddr + "/32")}
}

// viaProxy is a GET token request with Basic auth from client, forwarded
// by the trusted proxy.
func viaProxy(f *fixture, client, user, pass string) *httptest.ResponseRecorder {
	q := scopes("repository:test/app:pull").Encode()
	req := httptest.NewRequest(http.MethodGet, "/auth/token?"+q, nil)
	req.RemoteAddr = proxyAddr + ":40000"
	req.Header.Set("X-Forwarded-For", client)
	req.SetBasicAuth(user, pass)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func bcrypts(f *fixture) uint64 { return f.srv.auth.stats.bcrypts.Load() }

// advance moves the fixture's clock and reloads the rules, as the server's
// reload loop would have.
func advance(t testing.TB, f *fixture, d time.Duration) {
	t.Helper()
	f.clock.Advance(d)
	if err := f.srv.rules.reload(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestBruteForce10000 fires 10,000 wrong passwords from five clients
// behind the trusted proxy (one of them IPv6, changing its address within
// its /64) at two existing accounts and one that does not exist, 50 at a
// time: all within one instant, and spread over ten simulated minutes. It
// measures the bcrypt work done, the 429s, and that the attacked account's
// owner still logs in at once from another address.
func TestBruteForce10000(t *testing.T) {
	for _, tt := range []struct {
		name string
		tick time.Duration // simulated time between batches
	}{{"instant", 0}, {"10min", 3 * time.Second}} {
		t.Run(tt.name, func(t *testing.T) { bruteForce(t, tt.tick) })
	}
}

func bruteForce(t *testing.T, tick time.Duration) {
	f := newFixture(t)
	trustProxy(f)
	attackers := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "203.0.113.9", "2001:db8:1:2::%x"}
	accounts := []string{"waldi", "reader", "nobody"}
	const (
		total = 10000
		batch = 50
	)
	simulate := total / batch * tick
	var (
		codes              sync.Map // status -> *atomic.Int64
		badRetry, wrongKey atomic.Int64
	)
	count := func(code int) {
		v, _ := codes.LoadOrStore(code, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	b0 := bcrypts(f)
	start := time.Now()
	for n := 0; n < total; n += batch {
		var wg sync.WaitGroup
		for i := n; i < n+batch; i++ {
			wg.Go(func() {
				client := attackers[i%len(attackers)]
				if strings.Contains(client, "%x") {
					client = fmt.Sprintf(client, i) // another address in the same /64
				}
				rec := viaProxy(f, client, accounts[i/len(attackers)%len(accounts)], fmt.Sprintf("guess-%d", i))
				count(rec.Code)
				switch rec.Code {
				case http.StatusTooManyRequests:
					s, err := strconv.Atoi(rec.Header().Get("Retry-After"))
					if err != nil || s < 1 || s > 600 {
						badRetry.Add(1)
					}
				case http.StatusUnauthorized:
				default:
					wrongKey.Add(1)
				}
			})
		}
		wg.Wait()
		if tick > 0 {
			advance(t, f, tick)
		}
	}
	elapsed := time.Since(start)
	work := bcrypts(f) - b0
	get := func(code int) int64 {
		if v, ok := codes.Load(code); ok {
			return v.(*atomic.Int64).Load()
		}
		return 0
	}
	limitedIP, limitedAccount := f.srv.limits.limitedIP.Load(), f.srv.limits.limitedAccount.Load()

	// While waldi is under attack from five addresses, its owner logs in
	// from a sixth at once: one bcrypt, no 429.
	b1 := bcrypts(f)
	t0 := time.Now()
	ok := viaProxy(f, "192.0.2.77", "waldi", "waldi-secret")
	okTime := time.Since(t0)
	if ok.Code != http.StatusOK {
		t.Fatalf("correct login from another address during the attack: status %d %s", ok.Code, ok.Body)
	}
	if d := bcrypts(f) - b1; d != 1 {
		t.Errorf("correct login cost %d bcrypt comparisons, want 1", d)
	}
	// A limited address is refused even with the right password: it must
	// not learn which guess is right.
	for i := 0; viaProxy(f, "198.51.100.1", "waldi", "again").Code != http.StatusTooManyRequests; i++ {
		if i > 100 {
			t.Fatal("198.51.100.1 is no longer limited")
		}
	}
	if rec := viaProxy(f, "198.51.100.1", "waldi", "waldi-secret"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("correct password from a limited address: status %d, want 429", rec.Code)
	}

	t.Logf("%d wrong passwords from %d clients over %s simulated (%s real): %d answered 401, %d answered 429 (ip %d, account %d); %d bcrypt comparisons (%.2f%%); correct login from another address: 200 in %s",
		total, len(attackers), simulate, elapsed.Round(time.Millisecond), get(401), get(429), limitedIP, limitedAccount,
		work, 100*float64(work)/total, okTime.Round(time.Microsecond))

	if wrongKey.Load() != 0 {
		t.Errorf("%d wrong passwords got neither 401 nor 429", wrongKey.Load())
	}
	if badRetry.Load() != 0 {
		t.Errorf("%d 429s without a sane Retry-After", badRetry.Load())
	}
	if get(401)+get(429) != total || get(429) != int64(limitedIP+limitedAccount) {
		t.Errorf("401 %d + 429 %d != %d, or 429s %d != limited ip %d + account %d", get(401), get(429), total, get(429), limitedIP, limitedAccount)
	}
	// Each client: its burst, its refill over the simulated time and, once,
	// the requests it had in flight before its first failure was recorded.
	ipl := f.srv.cfg.FailLimitIP
	bound := uint64(len(attackers)) * uint64(float64(ipl.Burst)+math.Ceil(float64(ipl.Rate)*simulate.Seconds())+batch/float64(len(attackers)))
	if get(401) > int64(bound) || work > bound {
		t.Errorf("%d failures reached authentication, %d bcrypt comparisons; the limits allow at most %d", get(401), work, bound)
	}
}

// TestFailLimitRefills: a limited client gets 429 with Retry-After, and is
// admitted again once that time has passed: no permanent lockout.
func TestFailLimitRefills(t *testing.T) {
	f := newFixture(t)
	trustProxy(f)
	const client = "198.51.100.7"
	burst := f.srv.cfg.FailLimitIP.Burst
	for i := range burst {
		// A different account each time: only the client's limit applies.
		if rec := viaProxy(f, client, fmt.Sprintf("acct%d", i), "x"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i, rec.Code)
		}
	}
	b := bcrypts(f)
	rec := viaProxy(f, client, "waldi", "waldi-secret")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("after %d failures: status %d, want 429", burst, rec.Code)
	}
	if bcrypts(f) != b {
		t.Error("a 429 ran bcrypt")
	}
	ra, _ := strconv.Atoi(rec.Header().Get("Retry-After"))
	if want := int(math.Ceil(1 / float64(f.srv.cfg.FailLimitIP.Rate))); ra != want {
		t.Errorf("Retry-After %q, want %d", rec.Header().Get("Retry-After"), want)
	}
	if !strings.Contains(rec.Body.String(), "too many failed authentications") {
		t.Errorf("429 body %s", rec.Body)
	}
	// Retrying early does not push the refill further out.
	advance(t, f, time.Duration(ra-1)*time.Second)
	if rec := viaProxy(f, client, "waldi", "waldi-secret"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("before Retry-After: status %d, want 429", rec.Code)
	}
	advance(t, f, time.Second)
	if rec := viaProxy(f, client, "waldi", "waldi-secret"); rec.Code != http.StatusOK {
		t.Errorf("after Retry-After: status %d, want 200", rec.Code)
	}
	// Other clients were never affected.
	if rec := viaProxy(f, "198.51.100.8", "reader", "reader-secret"); rec.Code != http.StatusOK {
		t.Errorf("another client: status %d", rec.Code)
	}
}

// TestAccountLimitIsNotALockout: once an account's bucket is empty only the
// attack is refused: its owner gets in from an address it used before
// (even one with failures) and from any address without failures; an
// address that has failed gets 429.
func TestAccountLimitIsNotALockout(t *testing.T) {
	f := newFixture(t)
	trustProxy(f)
	// The owner's usual address logs in before the attack.
	if rec := viaProxy(f, "192.0.2.10", "waldi", "waldi-secret"); rec.Code != http.StatusOK {
		t.Fatalf("owner: %d", rec.Code)
	}
	// The first failure puts the account on record; the owner's next
	// success from its address marks the address as trusted.
	if rec := viaProxy(f, "198.51.100.200", "waldi", "nope"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("first failure: %d", rec.Code)
	}
	if rec := viaProxy(f, "192.0.2.10", "waldi", "waldi-secret"); rec.Code != http.StatusOK {
		t.Fatalf("owner: %d", rec.Code)
	}
	// A botnet: many addresses, three guesses each, below the client limit.
	burst := f.srv.cfg.FailLimitAccount.Burst
	failures, refused := 1, 0
	for i := 0; failures < burst+30; i++ {
		ip := fmt.Sprintf("198.51.%d.%d", 101+i/200, i%200+1)
		for range 3 {
			switch rec := viaProxy(f, ip, "waldi", fmt.Sprintf("guess%d", i)); rec.Code {
			case http.StatusUnauthorized:
				failures++
			case http.StatusTooManyRequests:
				refused++
			default:
				t.Fatalf("guess: %d", rec.Code)
			}
		}
	}
	// Once the account's bucket ran out, each new address got one guess
	// (clean, then dirty): failures beyond the burst equal the addresses.
	if refused == 0 {
		t.Fatal("the account limit never refused a guess")
	}
	b := bcrypts(f)
	tests := []struct {
		name, ip, pw string
		want         int
	}{
		{"trusted address", "192.0.2.10", "waldi-secret", 200},
		{"clean address", "192.0.2.11", "waldi-secret", 200},
		{"clean address, wrong password", "192.0.2.12", "typo", 401},
		{"the same address again, now dirty", "192.0.2.12", "waldi-secret", 429},
		{"an attacking address, right password", "198.51.101.1", "waldi-secret", 429},
	}
	for _, tt := range tests {
		if rec := viaProxy(f, tt.ip, "waldi", tt.pw); rec.Code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, rec.Code, tt.want)
		}
	}
	if got := bcrypts(f) - b; got > 2 {
		t.Errorf("%d bcrypt comparisons for the checks, want at most 2 (the clean address and the typo)", got)
	}
	// Other accounts are not affected by waldi's limit.
	if rec := viaProxy(f, "198.51.101.5", "reader", "reader-secret"); rec.Code != http.StatusOK {
		t.Errorf("another account from an attacking address with failures below its limit: %d", rec.Code)
	}
	// The bucket refills: after a while the dirty address is admitted.
	advance(t, f, CleanAfter)
	if rec := viaProxy(f, "192.0.2.12", "waldi", "waldi-secret"); rec.Code != http.StatusOK {
		t.Errorf("after %s: status %d, want 200", CleanAfter, rec.Code)
	}
	t.Logf("botnet guesses: %d failures reached authentication, %d refused with 429 (account burst %d)", failures, refused, burst)
}

// TestFailLimitScope: only password requests are limited; the client comes
// from the trusted proxy only; a spoofed X-Forwarded-For does not dodge
// the limit.
func TestFailLimitScope(t *testing.T) {
	f := newFixture(t)
	trustProxy(f)
	rec := f.get("waldi", "waldi-secret", url.Values{"service": {testService}, "offline_token": {"true"}})
	resp, _, _ := decode(t, rec)
	// A direct (untrusted) client makes up a new X-Forwarded-For each time.
	direct := func(user, pass string, i int) int {
		req := httptest.NewRequest(http.MethodGet, "/auth/token?service="+testService, nil)
		req.RemoteAddr = "203.0.113.50:1234"
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i%250+1))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec.Code
	}
	var got429 bool
	for i := range 100 {
		if direct(fmt.Sprintf("u%d", i), "x", i) == http.StatusTooManyRequests {
			got429 = true
			break
		}
	}
	if !got429 {
		t.Fatal("a direct client with a made-up X-Forwarded-For was never limited")
	}
	// Refresh tokens (unguessable) and anonymous requests are not limited.
	req := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {resp.RefreshToken}, "service": {testService}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "203.0.113.50:1234"
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Errorf("refresh token from a limited client: %d, want 200", w.Code)
	}
	if c := direct("", "", 0); c != http.StatusUnauthorized {
		t.Errorf("anonymous request from a limited client: %d, want 401", c)
	}
}

// TestFailLimitInflightBound: attempts take their tokens when they
// start, so a new client's first concurrent wave is admitted only up to the
// burst, before any of them has failed; failures keep their tokens, other
// outcomes give them back; and a failure settled late earns no refill for
// the time it waited.
func TestFailLimitInflightBound(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name          string
		ip, account   config.FailLimit
		wantFirstWave int
	}{
		{"ip", config.FailLimit{Rate: rate.Every(time.Minute), Burst: 5}, config.FailLimit{}, 5},
		{"account", config.FailLimit{}, config.FailLimit{Rate: rate.Every(time.Minute), Burst: 7}, 7},
		{"both", config.FailLimit{Rate: rate.Every(time.Minute), Burst: 5}, config.FailLimit{Rate: rate.Every(time.Minute), Burst: 7}, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newFailLimiter(tt.ip, tt.account)
			client := clientKey(netip.MustParseAddr("198.51.100.1"))
			var held []admission
			for range 60 {
				var adm admission
				if le := l.admit(&adm, client, "a", now); le == nil {
					held = append(held, adm)
				}
			}
			if len(held) != tt.wantFirstWave {
				t.Fatalf("first wave: %d of 60 concurrent attempts admitted, want %d", len(held), tt.wantFirstWave)
			}
			// Two fail, late: they settle a minute on, which refills
			// one token, not one per attempt that waited.
			later := now.Add(time.Minute)
			l.settle(&held[0], true, later)
			l.settle(&held[1], true, later)
			for i := range held[2:] {
				l.settle(&held[2+i], false, later) // successes give theirs back
			}
			admitted := 0
			for range 60 {
				var adm admission
				if l.admit(&adm, client, "a", later) == nil {
					admitted++
				}
			}
			want := tt.wantFirstWave - 2 + 1 // two failures spent, one refilled
			if admitted != want {
				t.Fatalf("after 2 failures and a minute: %d admitted, want %d", admitted, want)
			}
		})
	}
}

// TestFailLimitDropsIdleBuckets: the tables keep only keys with something
// to remember, so successful logins do not fill them.
func TestFailLimitDropsIdleBuckets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newFailLimiter(config.DefaultFailLimitIP, config.DefaultFailLimitAccount)
	for i := range 100 {
		var adm admission
		client := clientKey(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
		if le := l.admit(&adm, client, fmt.Sprintf("user%d", i), now); le != nil {
			t.Fatal(le)
		}
		l.settle(&adm, false, now)
	}
	if n, m := l.ip.cache.Len(), l.account.cache.Len(); n != 0 || m != 0 {
		t.Fatalf("after 100 successful logins: %d client and %d account buckets kept, want 0", n, m)
	}
	var adm admission
	client := clientKey(netip.MustParseAddr("198.51.100.1"))
	if le := l.admit(&adm, client, "a", now); le != nil {
		t.Fatal(le)
	}
	l.settle(&adm, true, now)
	if n, m := l.ip.cache.Len(), l.account.cache.Len(); n != 1 || m != 1 {
		t.Fatalf("after a failure: %d client and %d account buckets kept, want 1 and 1", n, m)
	}
	// Full again after the refill, but the failure is remembered for
	// CleanAfter's sake until the LRU lets it go.
	var again admission
	if le := l.admit(&again, client, "a", now.Add(time.Hour)); le != nil {
		t.Fatal(le)
	}
	l.settle(&again, false, now.Add(time.Hour))
	if n := l.ip.cache.Len(); n != 1 {
		t.Fatalf("a client with a failure on record was dropped")
	}
}

// TestRateLimitedLogLine pins the 429 line next to the 401 line that the
// fail2ban filter matches (internal/render TestFilterMatchesServeLog).
func TestRateLimitedLogLine(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			f := newFixture(t)
			f.srv.cfg.TrustedProxies = nil
			var buf bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&buf, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&buf, nil)
			}
			f.srv.log = slog.New(h)
			for i := range f.srv.cfg.FailLimitIP.Burst + 1 {
				f.get("waldi", fmt.Sprintf("pw-xyzzy%d", i), scopes())
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			fail, limited := lines[0], lines[len(lines)-1]
			want401 := map[string][]string{
				"text": {`level=WARN msg="authentication failed" user=waldi client_ip=192.0.2.1 grant=basic status=401 `},
				"json": {`"level":"WARN","msg":"authentication failed","user":"waldi","client_ip":"192.0.2.1","grant":"basic","status":401,`},
			}[format]
			want429 := map[string][]string{
				"text": {`level=WARN msg="rate limited" user=waldi client_ip=192.0.2.1 grant=basic status=429 `, `reason="too many failed authentications from this client"`},
				"json": {`"level":"WARN","msg":"rate limited","user":"waldi","client_ip":"192.0.2.1","grant":"basic","status":429,`, `"reason":"too many failed authentications from this client"`},
			}[format]
			for _, w := range want401 {
				if !strings.Contains(fail, w) {
					t.Errorf("401 line %s\nlacks %s", fail, w)
				}
			}
			for _, w := range want429 {
				if !strings.Contains(limited, w) {
					t.Errorf("429 line %s\nlacks %s", limited, w)
				}
			}
			if strings.Contains(buf.String(), "xyzzy") {
				t.Error("a password reached the log")
			}
		})
	}
}

// TestCachedLoginsSkipTheLimits: a correct password answered from the
// credential cache cannot reach bcrypt, so while its client and account
// are not limited it takes no token: any number of parallel cached logins
// from one address succeed, and leave the tables empty.
func TestCachedLoginsSkipTheLimits(t *testing.T) {
	f := newFixture(t)
	trustProxy(f)
	const client = "192.0.2.20"
	if rec := viaProxy(f, client, "waldi", "waldi-secret"); rec.Code != http.StatusOK {
		t.Fatalf("first login: %d", rec.Code)
	}
	n := 5 * f.srv.cfg.FailLimitIP.Burst
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = viaProxy(f, client, "waldi", "waldi-secret").Code })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("parallel cached login %d: status %d", i, c)
		}
	}
	if a, b := f.srv.limits.ip.cache.Len(), f.srv.limits.account.cache.Len(); a != 0 || b != 0 {
		t.Errorf("%d client and %d account buckets after successful logins, want none", a, b)
	}
}
