package render_test

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/token"
)

type f2bResult struct {
	matched int
	hosts   []string
}

var f2bHostRE = regexp.MustCompile(`(?m)^\|\s{6}(\S+)\s{2}`)
var f2bLinesRE = regexp.MustCompile(`Lines: \d+ lines, \d+ ignored, (\d+) matched, \d+ missed`)

// fail2banRegex runs Debian's fail2ban-regex on logfile with the filter
// rendered for c (passed by absolute path, as fail2ban-regex wants).
func fail2banRegex(t *testing.T, logfile string, c *config.Config) *f2bResult {
	t.Helper()
	bin := testenv.RequireBinary(t, "", "fail2ban-regex", "Debian's fail2ban (apt-get install -y fail2ban)")
	filter, err := render.Execute("fail2ban-filter.conf.tmpl", render.NewFail2banData(c))
	if err != nil {
		t.Fatal(err)
	}
	fp := filepath.Join(t.TempDir(), "regctl-auth.conf")
	writeFile(t, fp, filter, 0o644)
	r := testenv.MustRun(t, nil, "", bin, "-v", logfile, fp)
	m := f2bLinesRE.FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("fail2ban-regex printed no summary:\n%s", r.Stdout)
	}
	res := &f2bResult{}
	res.matched, _ = strconv.Atoi(m[1])
	if i := strings.Index(r.Stdout, "Failregex:"); i >= 0 {
		section := r.Stdout[i:]
		if j := strings.Index(section, "Ignoreregex:"); j >= 0 {
			section = section[:j]
		}
		for _, h := range f2bHostRE.FindAllStringSubmatch(section, -1) {
			res.hosts = append(res.hosts, h[1])
		}
	}
	return res
}

// oneUser is the store behind a real token server: bob, password "right".
type oneUser struct{ hash string }

func (o oneUser) GetUser(_ context.Context, name string) (*store.User, error) {
	if name != "bob" {
		return nil, store.ErrNotFound
	}
	return &store.User{Username: "bob", PasswordHash: o.hash}, nil
}

func (oneUser) ListRules(context.Context) ([]acl.Rule, error) { return nil, nil }

// tokenHandler is regctl's real token handler (internal/token) for the
// service registry.example.com over oneUser, logging to h, with the
// default settings as limits changes them. It runs until the test ends.
func tokenHandler(t *testing.T, h slog.Handler, limits func(*config.TokenServer)) http.Handler {
	t.Helper()
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := keys.Generate(dir, keys.ES256, now); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Load(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.TokenServerDefaults()
	cfg.Issuer, cfg.Services = "regctl", []string{"registry.example.com"}
	cfg.BcryptCost = bcrypt.MinCost // the dummy comparison for unknown users: fast under -race
	limits(&cfg)
	srv, err := token.New(cfg, oneUser{hash: string(hash)}, ks, slog.New(h), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv.Start(ctx)
	return srv.Handler()
}

// defaultLimits leaves the failed-login limits at their defaults.
func defaultLimits(*config.TokenServer) {}

// The client addresses serveLog's requests come from.
const (
	serveClient  = "198.51.100.23" // fails, then is rate limited per address
	serveClient2 = "198.51.100.24" // fails for bob, then is limited for bob
	serveClient3 = "198.51.100.25" // sends no credentials, often
)

// serveLog runs regctl's real token handler (internal/token) with a logger
// of the given format and returns what it logged for a set of requests:
// successes, failures with hostile user names and scopes, and requests
// refused by the failed-login limits (per address and per account), again
// with hostile user names, and requests without credentials. want counts,
// per client address, the lines the filter must match: every 401 but those
// for requests without credentials, and every 429.
func serveLog(t *testing.T, format string) (log string, want map[string]int) {
	t.Helper()
	var buf testenv.SyncBuffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if format == "json" {
		h = slog.NewJSONHandler(&buf, nil)
	}
	// Small buckets that do not refill during the test: after four failed
	// logins from an address, or three for an account, requests are refused.
	handler := tokenHandler(t, h, func(cfg *config.TokenServer) {
		cfg.FailLimitIP = config.FailLimit{Rate: rate.Limit(1.0 / 3600), Burst: 4}
		cfg.FailLimitAccount = config.FailLimit{Rate: rate.Limit(1.0 / 3600), Burst: 3}
	})

	do := func(client, user, pw, scope, account string) int {
		q := url.Values{"service": {"registry.example.com"}}
		if scope != "" {
			q.Set("scope", scope)
		}
		if account != "" {
			q.Set("account", account)
		}
		req := httptest.NewRequest(http.MethodGet, "/auth/token?"+q.Encode(), nil)
		req.RemoteAddr = client + ":40000"
		if user != "" || pw != "" {
			req.SetBasicAuth(user, pw)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		return w.Code
	}
	cases := []struct {
		client, user, pw, scope string
		want                    int
	}{
		{serveClient, "bob", "right", "repository:app:pull", 200},
		{serveClient, "bob", "right", "", 200},
		// Four failures empty serveClient's bucket. (Unknown users cost a
		// full bcrypt, slow under -race: few of them.)
		{serveClient, "bob", "wrong", "repository:app:pull", 401},
		{serveClient, "alice", "whatever", "", 401},
		{serveClient, `x client_ip=203.0.113.66 grant=basic status=401 y`, "pw", "", 401},
		{serveClient, `evil" client_ip="203.0.113.67`, "pw", "", 401},
		// A malformed request is answered before the limit, and not counted.
		{serveClient, "bob", "wrong", "repository:a client_ip=203.0.113.68:pull", 400},
		// Now every password request from serveClient is refused, even with
		// the right password.
		{serveClient, "bob", "wrong", "", 429},
		{serveClient, "bob", "right", "repository:app:pull", 429},
		{serveClient, `x client_ip=203.0.113.66 grant=basic status=429 y`, "pw", "", 429},
		{serveClient, `evil" client_ip="203.0.113.67`, "pw", "", 429},
		{serveClient, `a","client_ip":"203.0.113.69","grant":"basic","status":429,"x":"`, "pw", "", 429},
		{serveClient, "bob", "right", "repository:203.0.113.70:5000/app:pull", 429},
		// With two more failures for bob, from serveClient2, the account is
		// under attack; serveClient2, having failed, is refused for it.
		{serveClient2, "bob", "wrong", "", 401},
		{serveClient2, "bob", "wrong", "", 401},
		{serveClient2, "bob", "right", "", 429},
	}
	want = map[string]int{}
	for _, c := range cases {
		if got := do(c.client, c.user, c.pw, c.scope, ""); got != c.want {
			t.Fatalf("token request from %s as %q: status %d, want %d", c.client, c.user, got, c.want)
		}
		if c.want == 401 || c.want == 429 {
			want[c.client]++
		}
	}
	// Requests without credentials, some with account= as podman's first
	// request has, get 401, even from a limited client; they are not
	// failed logins, and none of them counts.
	for _, c := range []struct{ client, scope, account string }{
		{serveClient, "repository:app:pull", ""},
		{serveClient, "", "bob"},
		{serveClient3, "repository:app:pull", ""},
		{serveClient3, "repository:app:pull", ""},
		{serveClient3, "repository:app:pull", "bob"},
		{serveClient3, "", `x" client_ip="203.0.113.71`},
		{serveClient3, "repository:203.0.113.72:5000/app:pull", ""},
	} {
		if got := do(c.client, "", "", c.scope, c.account); got != http.StatusUnauthorized {
			t.Fatalf("token request without credentials from %s: status %d, want 401", c.client, got)
		}
	}
	return buf.String(), want
}

// The filter's patterns with fail2ban's <HOST>, translated to Go, applied
// as fail2ban does: with the timestamp cut out of the line.
var (
	f2bTimeRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})`)
	hostGo    = `(?P<host>[0-9a-fA-F.:]+)`
)

func goFailregexes(t *testing.T, c *config.Config) []*regexp.Regexp {
	t.Helper()
	filter, err := render.Execute("fail2ban-filter.conf.tmpl", render.NewFail2banData(c))
	if err != nil {
		t.Fatal(err)
	}
	var out []*regexp.Regexp
	in := false
	for _, line := range strings.Split(string(filter), "\n") {
		switch {
		case strings.HasPrefix(line, "failregex = "):
			in = true
			line = strings.TrimPrefix(line, "failregex = ")
		case in && strings.HasPrefix(line, "            "):
			line = strings.TrimSpace(line)
		default:
			in = false
			continue
		}
		out = append(out, regexp.MustCompile(strings.ReplaceAll(line, "<HOST>", hostGo)))
	}
	if len(out) != 5 {
		t.Fatalf("found %d failregex lines in the filter, want 5", len(out))
	}
	return out
}

func goMatch(res []*regexp.Regexp, line string) (host string, ok bool) {
	cut := f2bTimeRE.ReplaceAllString(line, "")
	for _, re := range res {
		if m := re.FindStringSubmatch(cut); m != nil {
			return m[re.SubexpIndex("host")], true
		}
	}
	return "", false
}

// TestFilterMatchesServeLog keeps the filter and regctl serve's log lines
// in step: it fails if internal/token changes the "authentication failed"
// (401) or "rate limited" (429) line (message, key order, status) in either
// format. Every such line must match, from the client's address and never
// from one smuggled in by a user name or scope; other lines must not, the
// "credentials required" line of a request without credentials (a 401 too)
// among them.
func TestFilterMatchesServeLog(t *testing.T) {
	c := variants[0].config(t)
	res := goFailregexes(t, c)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			log, want := serveLog(t, format)
			got := map[string]int{}
			var msgs []string
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				msg := serveMsg(line)
				if msg == "" {
					continue
				}
				msgs = append(msgs, msg)
				host, ok := goMatch(res, line)
				switch msg {
				case "authentication failed", "rate limited":
					if !ok {
						t.Errorf("a %q line did not match the filter: %s", msg, line)
						continue
					}
					got[host]++
				default:
					if ok {
						t.Errorf("a %q line matched: %s", msg, line)
					}
				}
			}
			for _, msg := range []string{"token issued", "authentication failed", "bad token request", "rate limited", "credentials required"} {
				if !slices.Contains(msgs, msg) {
					t.Errorf("regctl serve logged no %q line; log:\n%s", msg, log)
				}
			}
			for _, reason := range []string{"too many failed authentications from this client", "too many failed authentications for this account"} {
				if !strings.Contains(log, reason) {
					t.Errorf("no 429 with reason %q; log:\n%s", reason, log)
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("matched lines per host %v, want %v (an address smuggled in by a user name or scope?); log:\n%s", got, want, log)
			}

			// And the real fail2ban agrees.
			logfile := filepath.Join(t.TempDir(), "serve.log")
			if err := os.WriteFile(logfile, []byte(log), 0o644); err != nil {
				t.Fatal(err)
			}
			f2b := fail2banRegex(t, logfile, c)
			total := 0
			for _, n := range want {
				total += n
			}
			if f2b.matched != total {
				t.Errorf("fail2ban-regex matched %d lines, want %d; log:\n%s", f2b.matched, total, log)
			}
			if hosts := countHosts(f2b.hosts); !maps.Equal(hosts, want) {
				t.Errorf("fail2ban-regex found hosts %v, want %v", hosts, want)
			}
		})
	}
}

// serveMsg is the msg of one of regctl serve's token request lines, or "".
var serveMsgRE = regexp.MustCompile(`^(?:time=\S+ level=\w+ msg="([^"]*)"|\{"time":"[^"]*","level":"\w+","msg":"([^"]*)")`)

func serveMsg(line string) string {
	m := serveMsgRE.FindStringSubmatch(line)
	if m == nil || !strings.Contains(line, "client_ip") {
		return ""
	}
	return m[1] + m[2]
}

func countHosts(hosts []string) map[string]int {
	out := map[string]int{}
	for _, h := range hosts {
		out[h]++
	}
	return out
}

// f2bSamples are log lines in every format the filter knows, with the
// address a ban must hit, or "" for lines that must not count.
var f2bSamples = []struct{ line, host string }{
	// nginx's token access log: on /auth, a 401 that regctl serve marked
	// as a failed login counts, and every 429.
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=401 login=failed host=r ua="docker" rt=0.001`, "203.0.113.7"},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.6 method=POST uri="/auth/token" status=401 login=failed host=r ua="containerd" rt=0.001`, "203.0.113.6"},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.8 method=GET uri="/auth/token" status=429 login=- host=r ua="docker" rt=0.000`, "203.0.113.8"},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=2001:db8::8 method=POST uri="/auth" status=429 login=- host=r ua="x" rt=0.000`, "2001:db8::8"},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=200 login=- host=r ua="docker" rt=0.001`, ""},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/jwks.json" status=200 login=- host=r ua="x" rt=0.001`, ""},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/v2/" status=401 login=failed host=r ua="docker" rt=0.001`, ""},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/v2/" status=429 login=- host=r ua="docker" rt=0.001`, ""},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=4290 login=- host=r ua="x" rt=0.001`, ""},
	// A request without credentials: regctl serve's 401 carries no mark.
	// Neither a user agent nor a host that imitates the mark counts.
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=401 login=- host=r ua="regclient" rt=0.001`, ""},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=401 login=- host=login=failed ua="login=failed" rt=0.001`, ""},
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token status=401 login=failed" status=401 login=- host=r ua="x" rt=0.001`, ""},
	// nginx's token log as rendered before the mark: a 401 no longer
	// counts without it.
	{`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=401 host=r ua="docker" rt=0.001`, ""},
	// nginx's main log: the registry's normal 401 on /v2/, and token
	// requests in a format the filter does not know.
	{`203.0.113.7 - - [02/Jan/2026:03:04:05 +0000] "GET /v2/ HTTP/1.1" 401 87 "-" "docker/27" rt=0.001`, ""},
	{`203.0.113.7 - - [02/Jan/2026:03:04:05 +0000] "GET /auth/token HTTP/1.1" 429 0 "-" "docker/27" rt=0.001`, ""},

	// regctl serve, text: 401 and 429, each with its own message; user
	// names that try to put another address first are quoted by slog.
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="authentication failed" user=bob client_ip=203.0.113.9 grant=basic status=401 requested="" reason="wrong password"`, "203.0.113.9"},
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="rate limited" user=bob client_ip=203.0.113.10 grant=basic status=429 requested="" reason="too many failed authentications from this client"`, "203.0.113.10"},
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="rate limited" user=carol client_ip=203.0.113.11 grant=password status=429 requested="repository:app:pull" reason="too many failed authentications for this account"`, "203.0.113.11"},
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="rate limited" user="x client_ip=203.0.113.66 grant=basic status=429 y" client_ip=203.0.113.12 grant=basic status=429 requested="" reason="too many failed authentications from this client"`, "203.0.113.12"},
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="rate limited" user="evil\" client_ip=\"203.0.113.67" client_ip=203.0.113.13 grant=basic status=429 requested="" reason="too many failed authentications from this client"`, "203.0.113.13"},
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="rate limited" user=bob client_ip=203.0.113.14 grant=basic status=429 requested="repository:203.0.113.70:5000/app:pull" reason="too many failed authentications from this client"`, "203.0.113.14"},
	{`time=2026-01-02T03:04:05.000Z level=INFO msg="token issued" user=bob client_ip=203.0.113.7 grant=password status=200 requested="" granted=""`, ""},
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="bad token request" user=bob client_ip=203.0.113.7 grant=password status=400 requested="" reason=x`, ""},
	{`time=2026-01-02T03:04:05.000Z level=ERROR msg="token request failed" user=bob client_ip=203.0.113.7 grant=password status=503 requested="" reason=x`, ""},
	{`time=2026-01-02T03:04:05.000Z level=INFO msg="credentials required" user="" client_ip=203.0.113.7 grant=none status=401 requested="repository:app:pull" reason="no credentials"`, ""},
	// A message only with its own status.
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="rate limited" user=bob client_ip=203.0.113.7 grant=basic status=401 requested="" reason=x`, ""},
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="authentication failed" user=bob client_ip=203.0.113.7 grant=basic status=429 requested="" reason=x`, ""},
	// An unquoted user name cannot hold a space: such a line is not
	// regctl's, and does not match.
	{`time=2026-01-02T03:04:05.000Z level=WARN msg="rate limited" user=x client_ip=203.0.113.66 status=429 client_ip=203.0.113.7 grant=basic status=429 requested=""`, ""},

	// regctl serve, JSON.
	{`{"time":"2026-01-02T03:04:05.123456789Z","level":"WARN","msg":"authentication failed","user":"bob","client_ip":"203.0.113.15","grant":"basic","status":401,"requested":"","reason":"wrong password"}`, "203.0.113.15"},
	{`{"time":"2026-01-02T03:04:05.123456789Z","level":"WARN","msg":"rate limited","user":"bob","client_ip":"203.0.113.16","grant":"basic","status":429,"requested":"","reason":"too many failed authentications from this client"}`, "203.0.113.16"},
	{`{"time":"2026-01-02T03:04:05.123456789Z","level":"WARN","msg":"rate limited","user":"a\",\"client_ip\":\"203.0.113.69\",\"grant\":\"basic\",\"status\":429,\"x\":\"","client_ip":"2001:db8::17","grant":"basic","status":429,"requested":"","reason":"too many failed authentications from this client"}`, "2001:db8::17"},
	{`{"time":"2026-01-02T03:04:05.123456789Z","level":"INFO","msg":"token issued","user":"bob","client_ip":"203.0.113.7","grant":"basic","status":200,"requested":"","granted":""}`, ""},
	{`{"time":"2026-01-02T03:04:05.123456789Z","level":"INFO","msg":"credentials required","user":"","client_ip":"203.0.113.7","grant":"none","status":401,"requested":"repository:app:pull","reason":"no credentials"}`, ""},
	{`{"time":"2026-01-02T03:04:05.123456789Z","level":"WARN","msg":"rate limited","user":"bob","client_ip":"203.0.113.7","grant":"basic","status":401,"requested":"","reason":"x"}`, ""},

	// The audit log (--audit-log) is not for fail2ban: its lines have
	// other keys, and do not match.
	{`{"time":"2026-01-02T03:04:05.123456789Z","user":"bob","client_ip":"203.0.113.7","user_agent":"docker/27","grant":"basic","service":"r","requested":[],"granted":[],"decided_by":[],"result":"rate_limited","status":429,"reason":"too many failed authentications from this client"}`, ""},
	{`{"time":"2026-01-02T03:04:05.123456789Z","user":"bob","client_ip":"203.0.113.7","user_agent":"docker/27","grant":"basic","service":"r","requested":[],"granted":[],"decided_by":[],"result":"unauthorized","status":401,"reason":"wrong password"}`, ""},
}

// TestFilterSamples checks the sample lines with the Go translation of the
// filter and with the real fail2ban-regex: the lines that count match,
// from the right address; the others do not.
func TestFilterSamples(t *testing.T) {
	c := variants[0].config(t)
	res := goFailregexes(t, c)
	var match, other []string
	want := map[string]int{}
	for _, s := range f2bSamples {
		host, ok := goMatch(res, s.line)
		switch {
		case s.host == "" && ok:
			t.Errorf("matched %s in: %s", host, s.line)
		case s.host != "" && (!ok || host != s.host):
			t.Errorf("matched %q (%v), want %s, in: %s", host, ok, s.host, s.line)
		}
		if s.host == "" {
			other = append(other, s.line)
		} else {
			match = append(match, s.line)
			want[s.host]++
		}
	}

	dir := t.TempDir()
	pos := filepath.Join(dir, "match.log")
	writeFile(t, pos, []byte(strings.Join(match, "\n")+"\n"), 0o644)
	f2b := fail2banRegex(t, pos, c)
	if f2b.matched != len(match) {
		t.Errorf("fail2ban-regex matched %d of the %d lines that count", f2b.matched, len(match))
	}
	if hosts := countHosts(f2b.hosts); !maps.Equal(hosts, want) {
		t.Errorf("fail2ban-regex found hosts %v, want %v", hosts, want)
	}
	neg := filepath.Join(dir, "other.log")
	writeFile(t, neg, []byte(strings.Join(other, "\n")+"\n"), 0o644)
	if f2b := fail2banRegex(t, neg, c); f2b.matched != 0 || len(f2b.hosts) != 0 {
		t.Errorf("fail2ban-regex matched %d lines (hosts %v) that must not count", f2b.matched, f2b.hosts)
	}
}

// TestJailBansInDockerUser loads the rendered jail and filter with the real
// fail2ban-client, on a copy of Debian's /etc/fail2ban without the local
// jails: the configuration test passes, the jail reads nginx's token log
// (and only it), and its ban action jumps from the DOCKER-USER chain for
// ports 80 and 443, where bans stop traffic to Docker-published ports.
func TestJailBansInDockerUser(t *testing.T) {
	bin := testenv.RequireBinary(t, "", "fail2ban-client", "Debian's fail2ban (apt-get install -y fail2ban)")
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := v.config(t)
			d := render.NewFail2banData(c)
			if want := path.Join(c.Root, render.AuthLogFile); d.LogPath != want {
				t.Errorf("the jail reads %s, want nginx's token log %s", d.LogPath, want)
			}

			conf := filepath.Join(t.TempDir(), "fail2ban")
			if err := os.CopyFS(conf, os.DirFS("/etc/fail2ban")); err != nil {
				t.Fatalf("copy Debian's fail2ban configuration: %v", err)
			}
			for _, local := range []string{"jail.d", "fail2ban.d"} {
				if err := os.RemoveAll(filepath.Join(conf, local)); err != nil {
					t.Fatal(err)
				}
			}
			// fail2ban refuses a jail whose log does not exist (regctl init
			// creates it); the test's stands in for ROOT/logs/nginx/auth.log.
			d.LogPath = filepath.Join(t.TempDir(), "auth.log")
			writeFile(t, d.LogPath, nil, 0o644)
			for tmpl, dst := range map[string]string{
				"fail2ban-jail.conf.tmpl":   filepath.Join(conf, "jail.d", "regctl.conf"),
				"fail2ban-filter.conf.tmpl": filepath.Join(conf, "filter.d", "regctl-auth.conf"),
			} {
				b, err := render.Execute(tmpl, d)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, dst, b, 0o644)
			}

			if r := testenv.Run(t, nil, "", bin, "-c", conf, "-t"); r.Code != 0 || !strings.Contains(r.Output(), "configuration test is successful") {
				t.Fatalf("fail2ban-client -t: exit %d\n%s", r.Code, r.Output())
			}
			dump := testenv.MustRun(t, nil, "", bin, "-c", conf, "-d").Stdout
			var jail []string
			for _, line := range strings.Split(dump, "\n") {
				if strings.Contains(line, "'regctl-auth'") {
					jail = append(jail, line)
				}
			}
			all := strings.Join(jail, "\n")
			for _, want := range []string{
				"['add', 'regctl-auth', 'auto']",
				"['set', 'regctl-auth', 'addlogpath', '" + d.LogPath + "', 'head']",
				"['set', 'regctl-auth', 'addaction', 'iptables-multiport']",
				"-I DOCKER-USER -p $proto -m multiport --dports http,https -j f2b-regctl-auth",
				"['chain', 'DOCKER-USER']",
				"status=(?:401 login=failed|429)",
				`msg="rate limited"`,
				"['set', 'regctl-auth', 'maxretry', 10]",
			} {
				if !strings.Contains(all, want) {
					t.Errorf("fail2ban-client -d: the regctl-auth jail lacks %q:\n%s", want, all)
				}
			}
			if n := strings.Count(all, "addlogpath"); n != 1 {
				t.Errorf("the jail reads %d logs, want only nginx's token log (another would count requests twice):\n%s", n, all)
			}
			if strings.Contains(all, "-I INPUT") {
				t.Errorf("the jail bans in INPUT, which does not stop traffic to Docker-published ports")
			}
		})
	}
}
