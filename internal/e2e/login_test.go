//go:build integration

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// loginServer is a `regctl serve` (built without -race, so bcrypt takes
// its real time) on a SQLite store whose users were made with the plain
// `regctl user add`: bcrypt at the default cost.
type loginServer struct {
	regctl  testenv.Regctl
	url     string
	metrics string
	service string
	proc    *testenv.Proc
}

func startLoginServer(t *testing.T, users []string, flags ...string) *loginServer {
	t.Helper()
	bin := testenv.BuildRegctl(t)
	dir := t.TempDir()
	s := &loginServer{
		regctl:  testenv.Regctl{Bin: bin, Store: "sqlite://" + filepath.Join(dir, "regctl.db")},
		service: "registry.login.test",
	}
	keys := filepath.Join(dir, "keys")
	testenv.MustRun(t, nil, "", bin, "keys", "generate", "--dir", keys)
	for _, u := range users {
		s.regctl.MustRun(t, u+"-password\n", "user", "add", u, "--password-stdin")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	maddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	args := append([]string{"--issuer", "regctl-login", "--service", s.service, "--keys", keys,
		"--store", s.regctl.Store, "--reload-interval", "500ms", "--metrics-listen", maddr}, flags...)
	s.proc = startServeAt(t, "regctl-serve", bin, addr, args...)
	s.url, s.metrics = "http://"+addr, "http://"+maddr
	return s
}

// client returns an HTTP client whose connections come from the loopback
// address from (127.0.0.0/8 is all local), so the server sees distinct
// client addresses without a proxy.
func loginClient(from string, conns int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: conns,
		},
	}
}

type loginAnswer struct {
	status int
	body   string
	took   time.Duration
}

// login asks for a token with Basic auth and times the answer.
func (s *loginServer) login(t *testing.T, c *http.Client, user, pw string) loginAnswer {
	t.Helper()
	q := url.Values{"service": {s.service}, "scope": {"repository:app:pull"}}
	req, err := http.NewRequest(http.MethodGet, s.url+"/auth/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pw)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return loginAnswer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return loginAnswer{status: resp.StatusCode, body: string(b), took: time.Since(start)}
}

// metric reads one unlabelled value from /metrics.
func (s *loginServer) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// waitStatus polls until user/pw gets want, as after a store change.
func (s *loginServer) waitStatus(t *testing.T, c *http.Client, user, pw string, want int) {
	t.Helper()
	if err := testenv.Poll(20*time.Second, 100*time.Millisecond, func() error {
		if a := s.login(t, c, user, pw); a.status != want {
			return fmt.Errorf("%s: status %d, want %d", user, a.status, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestLoginTimingHidesAccounts: a failed login takes as long whatever the
// reason, so response times tell neither which users exist nor which are
// disabled, expired or have a cached credential. The users have the cost
// `regctl user add` gives them by default; the server was told nothing
// about it. The limits are off here: this is about the answers they let
// through.
func TestLoginTimingHidesAccounts(t *testing.T) {
	s := startLoginServer(t, []string{"alice", "carol", "dave", "erin"},
		"--fail-limit-ip", "off", "--fail-limit-account", "off")
	c := loginClient("127.0.0.1", 4)

	// carol, dave and erin log in correctly: their credentials are cached.
	for _, u := range []string{"carol", "dave", "erin"} {
		s.waitStatus(t, c, u, u+"-password", http.StatusOK)
	}
	s.regctl.MustRun(t, "", "user", "disable", "dave")
	// An expiry in the past is refused: set one a moment ahead and let it pass.
	s.regctl.MustRun(t, "", "user", "expire", "erin", time.Now().Add(2*time.Second).UTC().Format(time.RFC3339))
	s.waitStatus(t, c, "dave", "dave-password", http.StatusUnauthorized)
	s.waitStatus(t, c, "erin", "erin-password", http.StatusUnauthorized)

	kinds := []struct {
		name     string
		user, pw func(i int) string
	}{
		{"unknown user", func(i int) string { return fmt.Sprintf("nobody%d", i) }, wrongPW},
		{"wrong password", func(int) string { return "alice" }, wrongPW},
		{"wrong password, cached user", func(int) string { return "carol" }, wrongPW},
		{"disabled user, right password", func(int) string { return "dave" }, func(int) string { return "dave-password" }},
		{"expired user, right password", func(int) string { return "erin" }, func(int) string { return "erin-password" }},
	}
	// The tries are interleaved, one of each kind per cycle, and each time
	// is divided by the median of its cycle: load from elsewhere on a
	// shared machine changes more slowly than a cycle, so it divides out,
	// while a timing leak stays. A timing leak also shows in every round:
	// a round outside the bounds is measured again, up to three rounds,
	// and the test fails only if none is within them.
	const tries, rounds = 21, 3
	var firstBody string
	measure := func(round int) []float64 {
		rel := make([][]float64, len(kinds))
		for i := round * tries; i < (round+1)*tries; i++ {
			cycle := make([]time.Duration, len(kinds))
			for k := range kinds {
				// Rotate the order so that no kind always follows another.
				kind := kinds[(k+i)%len(kinds)]
				a := s.login(t, c, kind.user(i), kind.pw(i))
				if a.status != http.StatusUnauthorized {
					t.Fatalf("%s: status %d, want 401", kind.name, a.status)
				}
				if firstBody == "" {
					firstBody = a.body
				} else if a.body != firstBody {
					t.Fatalf("%s: body %q differs from %q", kind.name, a.body, firstBody)
				}
				cycle[(k+i)%len(kinds)] = a.took
			}
			m := median(cycle)
			for k, d := range cycle {
				rel[k] = append(rel[k], float64(d)/float64(m))
			}
		}
		meds := make([]float64, len(kinds))
		for k, kind := range kinds {
			slices.Sort(rel[k])
			meds[k] = rel[k][len(rel[k])/2]
			t.Logf("round %d: %-32s median %.3f× its cycle's median over %d tries", round+1, kind.name, meds[k], tries)
		}
		return meds
	}
	var meds []float64
	for round := range rounds {
		meds = measure(round)
		t.Logf("round %d: slowest/fastest: %.2f", round+1, slices.Max(meds)/slices.Min(meds))
		if slices.Max(meds)/slices.Min(meds) <= 1.25 {
			break
		}
	}
	for k := range kinds {
		for j := range kinds {
			if r := meds[k] / meds[j]; r < 0.8 || r > 1.25 {
				t.Errorf("%s takes %.2f× as long as %s in each of %d rounds: want 0.8–1.25×",
					kinds[k].name, r, kinds[j].name, rounds)
			}
		}
	}
	// The correct login of an active user still uses its cached credential.
	before := s.metric(t, "regctl_credential_cache_hits_total")
	s.waitStatus(t, c, "carol", "carol-password", http.StatusOK)
	if s.metric(t, "regctl_credential_cache_hits_total") <= before {
		t.Error("a correct login of a cached user was not answered from the cache")
	}
}

func wrongPW(i int) string { return fmt.Sprintf("wrong-%d", i) }

// TestLoginFirstWave: parallel guesses from a new address take their
// place in the limits when they start, so at most the burst (20 per
// address by default) reaches bcrypt and the rest get 429 at once; and
// while that burst is checked, a correct login from another address waits
// at most about one bcrypt for its turn.
func TestLoginFirstWave(t *testing.T) {
	var users []string
	for i := range 15 { // 5 timed before the waves, 5 during, 5 after
		users = append(users, fmt.Sprintf("legit%d", i))
	}
	s := startLoginServer(t, append(users, "frank"))
	const burst = 20 // config.DefaultFailLimitIP

	// Unloaded: first (uncached) logins from their own address.
	legit := loginClient("127.0.0.4", 1)
	timeLogins := func(users []string) []time.Duration {
		var took []time.Duration
		for _, u := range users {
			a := s.login(t, legit, u, u+"-password")
			if a.status != http.StatusOK {
				t.Fatalf("%s: status %d", u, a.status)
			}
			took = append(took, a.took)
		}
		return took
	}
	unloaded := timeLogins(users[:5])

	for _, tt := range []struct {
		name  string
		from  string
		n     int
		guess func(i int) (user, pw string)
		legit bool // time correct logins from another address meanwhile
	}{
		{"60 guesses and the right password", "127.0.0.2", 61, func(i int) (string, string) {
			if i == 60 {
				return "frank", "frank-password"
			}
			return "frank", wrongPW(i)
		}, false},
		{"200 unknown users", "127.0.0.3", 200, func(i int) (string, string) {
			return fmt.Sprintf("ghost%d", i), wrongPW(i)
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The fairness check times correct logins during the wave
			// against unloaded ones before and after it. The machine is
			// shared, so a round that misses is run again, up to three
			// rounds, each with a fresh attacking address and fresh
			// (uncached) users; the counts hold in every round.
			rounds := 1
			if tt.legit {
				rounds = 3
			}
			before, during, after := unloaded, users[5:10], users[10:15]
			for round := range rounds {
				from := tt.from
				if round > 0 {
					from = fmt.Sprintf("127.0.0.%d", 10+round)
					fresh := make([]string, 15)
					for i := range fresh {
						fresh[i] = fmt.Sprintf("legit-r%d-%d", round, i)
						s.regctl.MustRun(t, fresh[i]+"-password\n", "user", "add", fresh[i], "--password-stdin")
					}
					sync := fmt.Sprintf("sync-r%d", round) // added last: seen, all are
					s.regctl.MustRun(t, sync+"-password\n", "user", "add", sync, "--password-stdin")
					s.waitStatus(t, legit, sync, sync+"-password", http.StatusOK)
					before, during, after = timeLogins(fresh[:5]), fresh[5:10], fresh[10:15]
				}
				if !tt.legit {
					during = nil
				}
				if firstWave(t, s, legit, from, tt.n, tt.guess, during, burst, func(loaded []time.Duration) bool {
					// The unloaded time is the slower of the medians before
					// and after the wave, so that load from elsewhere that
					// came or went meanwhile is not taken for the wave's.
					afterTook := timeLogins(after)
					mu, ml := max(median(before), median(afterTook)), median(loaded)
					t.Logf("round %d: correct login from another address: unloaded median %v (before %v, after %v), during the wave %v (%.2f×; each %v)",
						round+1, mu.Round(time.Millisecond), median(before).Round(time.Millisecond), median(afterTook).Round(time.Millisecond),
						ml.Round(time.Millisecond), float64(ml)/float64(mu), loaded)
					if ml <= 2*mu {
						return true
					}
					if round == rounds-1 {
						t.Errorf("a correct login during the wave took %v, more than twice its unloaded %v, in each of %d rounds", ml, mu, rounds)
					}
					return false
				}) {
					break
				}
			}
		})
	}
}

// firstWave sends n attempts (guess) at once from the address from, and,
// if during names users, logs them in correctly from legit meanwhile and
// passes their times to judge (whose answer it returns; true without
// during). It checks that at most burst attempts got past the limit and
// reached bcrypt.
func firstWave(t *testing.T, s *loginServer, legit *http.Client, from string, n int, guess func(i int) (user, pw string),
	during []string, burst int, judge func(loaded []time.Duration) bool) bool {
	t.Helper()
	bcryptsBefore := s.metric(t, "regctl_credential_cache_misses_total")
	attacker := loginClient(from, n)
	answers := make([]loginAnswer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			u, pw := guess(i)
			answers[i] = s.login(t, attacker, u, pw)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	close(start)

	var loaded []time.Duration
	if len(during) > 0 {
		time.Sleep(50 * time.Millisecond) // the wave is in
		for _, u := range during {
			a := s.login(t, legit, u, u+"-password")
			select {
			case <-done:
				t.Fatalf("the wave ended before %s's login: the load was not there", u)
			default:
			}
			if a.status != http.StatusOK {
				t.Fatalf("%s during the wave: status %d", u, a.status)
			}
			loaded = append(loaded, a.took)
		}
	}
	<-done
	counts := map[int]int{}
	for _, a := range answers {
		counts[a.status]++
	}
	bcrypts := s.metric(t, "regctl_credential_cache_misses_total") - bcryptsBefore - float64(len(loaded))
	t.Logf("%d parallel from %s: statuses %v, %v bcrypt comparisons", n, from, counts, bcrypts)
	if reached := n - counts[http.StatusTooManyRequests]; reached > burst {
		t.Errorf("%d attempts were answered other than 429, want at most the burst (%d)", reached, burst)
	}
	if bcrypts > float64(burst) {
		t.Errorf("%v bcrypt comparisons for the wave, want at most %d", bcrypts, burst)
	}
	if counts[http.StatusTooManyRequests] < n-burst {
		t.Errorf("%d × 429, want at least %d", counts[http.StatusTooManyRequests], n-burst)
	}
	if len(during) == 0 {
		return true
	}
	return judge(loaded)
}
