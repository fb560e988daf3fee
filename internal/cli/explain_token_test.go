package cli

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
	"github.com/regctl/regctl/internal/token"
)

// These tests check that `regctl acl explain` decides exactly as the token
// server: for random users, labels, grants, rules (with expiry dates),
// scopes, client addresses and times, the decision explain prints (-o
// json, through the whole command) must equal the access of the token the
// real HTTP handler issues, or its 401 for an account that is not active.

const (
	randService  = "registry.test"
	randPassword = "secret-password"
)

// chooser is where the generator's choices come from: a seeded PRNG for
// the randomized test, the fuzzer's bytes for the fuzz target.
type chooser interface {
	intn(n int) int
}

type randChooser struct{ r *rand.Rand }

func (c randChooser) intn(n int) int { return c.r.IntN(n) }

// byteChooser reads choices from data; when it runs out every choice is 0.
type byteChooser struct {
	data []byte
}

func (c *byteChooser) intn(n int) int {
	if n <= 1 || len(c.data) == 0 {
		return 0
	}
	var v uint16
	if n > 256 && len(c.data) >= 2 {
		v = binary.LittleEndian.Uint16(c.data)
		c.data = c.data[2:]
	} else {
		v = uint16(c.data[0])
		c.data = c.data[1:]
	}
	return int(v) % n
}

func pick[T any](c chooser, from []T) T { return from[c.intn(len(from))] }

func chance(c chooser, percent int) bool { return c.intn(100) < percent }

var (
	genNames       = []string{"alice", "bob", "carol", "ci-bot", "dev.ops", "x+y"}
	genLabelKeys   = []string{"full-access", "read-only-access", "team", "env"}
	genLabelValues = []string{"test/*", "prod/*", "team/app", "socke*", "*", "ci", "dev", "a/b/*", "prod/[a-m]*", "*/*"}
	genGrants      = []string{"team/*", "team/app", "dock/*", "*", "*/*", "socke?", "prod/app", "test/*/x", "ci/*"}
	genRepos       = []string{"test/app", "prod/app", "team/app", "team/x/y", "socke1", "dock/tool", "alice/app", "bob/img",
		"ci/app", "dev/app", "prod/zeta", "a/b/c", "localhost:5000/team/app", "team-1/app"}
	genNamePats = []string{"${labels:full-access}", "${labels:read-only-access}", "${account}/*", "${labels:team}/*",
		"/(team|prod)/.*/", "test/*", "*", "prod/*", "/.*app/", "socke*", "team/*", "*/*", "${labels:env}/${account}",
		"/${account}/.+/", "localhost:5000/*/*", "/team-[0-9]+/.*/"}
	genAccountPats = []string{"alice", "bob", "/.+/", "ci-*", "${labels:team}", "", "/[a-c].*/", "x+y", "dev.ops", "*"}
	genTypePats    = []string{"repository", "registry", "*", "/repo.*/"}
	genServicePats = []string{randService, "other", "*", "${labels:env}", "registry.*"}
	genIPs         = []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "127.0.0.1", "10.1.0.0/16"}
	genLabelConds  = []map[string]string{{"team": "ci"}, {"env": "/prod|dev/"}, {"full-access": "*"}, {"team": "${account}"}}
	genActions     = [][]string{{}, {"*"}, {"pull"}, {"pull", "push"}, {"push"}, {"delete"}, {"pull", "delete"}, {"*", "pull"}}
	genReqActions  = [][]string{{"pull"}, {"push"}, {"pull", "push"}, {"delete"}, {"pull", "push", "delete"}, {"*"}, {"pull", "*"}}
	genClientIPs   = []string{"", "10.1.2.3", "192.0.2.1", "2001:db8::5", "127.0.0.1", "::ffff:10.9.9.9", "198.51.100.7"}
)

// world is one store's content.
type world struct {
	users []store.User
	rules []acl.Rule
	times []time.Time // every expiry, for requests right at the boundary
}

// request is one explain / token request.
type request struct {
	user   string
	scopes []string
	ip     string
	at     time.Time
}

func genTime(c chooser, base time.Time, w *world) *time.Time {
	if !chance(c, 40) {
		return nil
	}
	d := time.Duration(c.intn(400*24)-200*24) * time.Hour
	t := base.Add(d).Add(time.Duration(c.intn(3600)) * time.Second).Truncate(store.TimePrecision).UTC()
	w.times = append(w.times, t)
	return &t
}

func genWorld(c chooser, base, hash string) world {
	b, _ := time.Parse(time.RFC3339, base)
	var w world
	names := slices.Clone(genNames)
	nUsers := 1 + c.intn(len(names))
	for i := 0; i < nUsers; i++ {
		j := c.intn(len(names))
		name := names[j]
		names = slices.Delete(names, j, j+1)
		u := store.User{Username: name, PasswordHash: hash, Disabled: chance(c, 8)}
		u.ExpiresAt = genTime(c, b, &w)
		for k := c.intn(4); k > 0; k-- {
			if u.Labels == nil {
				u.Labels = map[string][]string{}
			}
			key := pick(c, genLabelKeys)
			v := pick(c, genLabelValues)
			if !slices.Contains(u.Labels[key], v) {
				u.Labels[key] = append(u.Labels[key], v)
			}
		}
		for k := c.intn(4); k > 0; k-- {
			g := acl.Grant{Pattern: pick(c, genGrants), Actions: slices.Clone(pick(c, genActions[1:]))}
			g.ExpiresAt = genTime(c, b, &w)
			if !slices.ContainsFunc(u.Grants, func(x acl.Grant) bool { return x.Pattern == g.Pattern }) {
				u.Grants = append(u.Grants, g)
			}
		}
		w.users = append(w.users, u)
	}
	seqs := map[int64]bool{}
	for k := c.intn(9); k > 0; k-- {
		r := acl.Rule{Seq: int64(1 + c.intn(100)), Actions: slices.Clone(pick(c, genActions))}
		if seqs[r.Seq] {
			continue
		}
		field := func(pool []string) *string {
			if !chance(c, 30) {
				return nil
			}
			v := pick(c, pool)
			return &v
		}
		r.Match.Account = field(genAccountPats)
		r.Match.Name = field(genNamePats)
		r.Match.Type = field(genTypePats)
		r.Match.Service = field(genServicePats)
		r.Match.IP = field(genIPs)
		if chance(c, 20) {
			r.Match.Labels = pick(c, genLabelConds)
		}
		r.ExpiresAt = genTime(c, b, &w)
		if r.Validate() != nil {
			continue
		}
		seqs[r.Seq] = true
		w.rules = append(w.rules, r)
	}
	return w
}

func genRequest(c chooser, w *world, base string) request {
	b, _ := time.Parse(time.RFC3339, base)
	rq := request{user: w.users[c.intn(len(w.users))].Username, ip: pick(c, genClientIPs)}
	for k := 1 + c.intn(3); k > 0; k-- {
		if chance(c, 10) {
			rq.scopes = append(rq.scopes, "registry:catalog:*")
			continue
		}
		rq.scopes = append(rq.scopes, "repository:"+pick(c, genRepos)+":"+strings.Join(pick(c, genReqActions), ","))
	}
	switch {
	case len(w.times) > 0 && chance(c, 30):
		// Right at, or just before, an expiry: it is exclusive.
		rq.at = pick(c, w.times).Add(-time.Duration(c.intn(2)) * time.Millisecond)
	default:
		rq.at = b.Add(time.Duration(c.intn(400*24)-200*24) * time.Hour)
	}
	return rq
}

// randBase is the middle of the generated times.
const randBase = "2026-11-29T12:00:00Z"

var (
	minHashOnce sync.Once
	minHash     string
)

// randHash is a cheap bcrypt hash of randPassword: the token server
// verifies it once per user and world.
func randHash() string {
	minHashOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(randPassword), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		minHash = string(h)
	})
	return minHash
}

// testKeys generates a signing key set in a temporary directory.
func testKeys(tb testing.TB) *keys.Set {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "keys")
	if err := keys.Generate(dir, keys.ES256, time.Now()); err != nil {
		tb.Fatal(err)
	}
	ks, err := keys.Load(dir, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

type tokenClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *tokenClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *tokenClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// checker serves one world: a SQLite store, the token server over it, and
// explain through the whole command tree.
type checker struct {
	t     testing.TB
	env   *testEnv
	h     http.Handler
	clock *tokenClock
}

func newChecker(t *testing.T, ks *keys.Set, w world) *checker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "regctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	for i := range w.users {
		u := w.users[i]
		if err := st.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.ReplaceRules(ctx, w.rules); err != nil {
		t.Fatal(err)
	}
	cfg := config.TokenServerDefaults()
	cfg.Issuer, cfg.Services = "regctl-test", []string{randService}
	// The clock jumps around: keep the rules "fresh" whatever it says.
	cfg.ReloadInterval, cfg.StoreTimeout = 10*time.Minute, 100_000*time.Hour
	// Nor may the login limits answer 429, which explain does not model:
	// the store's attempt log counts by the clock's time, and this one
	// goes back and forth between the worlds' instants.
	cfg.FailLimitIP, cfg.FailLimitAccount = config.FailLimit{}, config.FailLimit{}
	clk := &tokenClock{now: fixedNow}
	srv, err := token.New(cfg, st, ks, slog.New(slog.NewTextHandler(io.Discard, nil)), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(ctx)
	if err := srv.Ready(); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, st)
	return &checker{t: t, env: env, h: srv.Handler(), clock: clk}
}

// check runs one request both ways and reports a difference.
func (c *checker) check(rq request) {
	c.t.Helper()
	args := []string{"acl", "explain", rq.user, "--service", randService, "--at", rq.at.Format(time.RFC3339Nano), "-o", "json"}
	for _, s := range rq.scopes {
		args = append(args, "--scope", s)
	}
	if rq.ip != "" {
		args = append(args, "--ip", rq.ip)
	}
	code := c.env.run("", args...)
	var res token.Explanation
	if err := json.Unmarshal(c.env.out.Bytes(), &res); err != nil {
		c.t.Fatalf("regctl %s: exit %d, %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, err, c.env.out, c.env.errOut)
	}
	if c.env.errOut.Len() > 0 {
		c.t.Errorf("regctl %s: stderr %s", strings.Join(args, " "), c.env.errOut)
	}
	if want := map[bool]int{true: 0, false: 1}[res.Granted]; code != want {
		c.t.Errorf("regctl %s: exit %d with granted=%v", strings.Join(args, " "), code, res.Granted)
	}

	c.clock.set(rq.at)
	q := url.Values{"service": {randService}, "scope": rq.scopes}
	req := httptest.NewRequest(http.MethodGet, "/auth/token?"+q.Encode(), nil)
	req.SetBasicAuth(rq.user, randPassword)
	req.RemoteAddr = ""
	if rq.ip != "" {
		req.RemoteAddr = net.JoinHostPort(rq.ip, "40000")
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)

	desc := fmt.Sprintf("user %s, scopes %q, ip %q, at %s", rq.user, rq.scopes, rq.ip, rq.at.Format(time.RFC3339Nano))
	if res.Status != store.StatusActive {
		if rec.Code != http.StatusUnauthorized {
			c.t.Errorf("%s: explain says the account is %s, the token server answered %d %s", desc, res.Status, rec.Code, rec.Body)
		}
		return
	}
	if rec.Code != http.StatusOK {
		c.t.Errorf("%s: explain says active, the token server answered %d %s", desc, rec.Code, rec.Body)
		return
	}
	got := tokenAccess(c.t, rec.Body.Bytes())
	var want []acl.Scope
	for _, sr := range res.Scopes {
		if len(sr.Granted) > 0 {
			want = append(want, acl.Scope{Type: sr.Type, Name: sr.Name, Actions: sr.Granted})
		}
	}
	if !scopesEqual(got, want) {
		c.t.Errorf("%s:\n  explain grants %v\n  the token has  %v", desc, want, got)
	}
	// The explanation names a source for every granted action.
	for _, sr := range res.Scopes {
		for _, a := range sr.Actions {
			if a.Granted && len(a.By) == 0 {
				c.t.Errorf("%s: %s on %s granted by nothing the explanation shows", desc, a.Action, sr.Scope)
			}
		}
	}
}

func scopesEqual(a, b []acl.Scope) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Name != b[i].Name || !slices.Equal(a[i].Actions, b[i].Actions) {
			return false
		}
	}
	return true
}

// tokenAccess decodes the access claim of a token response (the signature
// is the token package's business, tested there).
func tokenAccess(t testing.TB, body []byte) []acl.Scope {
	t.Helper()
	var resp struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(resp.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims token.Claims
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Access
}

// TestExplainMatchesTokenServer: a fixed seed, at least 2,000 requests.
func TestExplainMatchesTokenServer(t *testing.T) {
	worlds, perWorld := 12, 180
	if testing.Short() {
		worlds, perWorld = 3, 60
	}
	ks := testKeys(t)
	c := randChooser{rand.New(rand.NewPCG(20261129, 3))}
	total, granted, denied, inactive := 0, 0, 0, 0
	for i := 0; i < worlds; i++ {
		w := genWorld(c, randBase, randHash())
		t.Run(fmt.Sprintf("world%02d", i), func(t *testing.T) {
			ck := newChecker(t, ks, w)
			for j := 0; j < perWorld && !t.Failed(); j++ {
				rq := genRequest(c, &w, randBase)
				ck.check(rq)
				total++
				var res token.Explanation
				_ = json.Unmarshal(ck.env.out.Bytes(), &res)
				switch {
				case res.Status != store.StatusActive:
					inactive++
				case res.Granted:
					granted++
				default:
					denied++
				}
			}
		})
	}
	t.Logf("%d requests: %d fully granted, %d (partly) denied, %d inactive accounts", total, granted, denied, inactive)
	if !testing.Short() && total < 2000 {
		t.Errorf("only %d requests", total)
	}
	// The generator must reach every kind of outcome.
	if granted == 0 || denied == 0 || inactive == 0 {
		t.Errorf("outcomes not covered: %d granted, %d denied, %d inactive", granted, denied, inactive)
	}
}

// FuzzExplainMatchesTokenServer builds the world and the requests from the
// fuzzer's bytes.
func FuzzExplainMatchesTokenServer(f *testing.F) {
	f.Add([]byte("regctl"))
	f.Add([]byte{5, 0, 1, 2, 3, 200, 17, 99, 4, 4, 4, 4, 250, 1, 0, 9, 33, 12, 7, 7, 7, 90, 91, 92, 93, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte(strings.Repeat("\x03\x41\xf0\x10", 40)))
	ks := testKeys(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &byteChooser{data: data}
		w := genWorld(c, randBase, randHash())
		ck := newChecker(t, ks, w)
		// Building a world costs a token server (bcrypt at cost 10 for
		// its dummy hash): ask it many questions.
		for i := 0; i < 16; i++ {
			ck.check(genRequest(c, &w, randBase))
		}
	})
}
