package render_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveLog runs regctl's real token handler (internal/token) with a logger
// of the given format and returns what it logged for a set of requests:
// failures with hostile user names and scopes, and successes.
func serveLog(t *testing.T, format string) (log string, failures int) {
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
	var buf syncBuffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if format == "json" {
		h = slog.NewJSONHandler(&buf, nil)
	}
	cfg := token.Defaults()
	cfg.Issuer, cfg.Service = "regctl", "registry.example.com"
	srv, err := token.New(cfg, oneUser{hash: string(hash)}, ks, slog.New(h), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv.Start(ctx)
	handler := srv.Handler()

	do := func(user, pw, scope string) int {
		q := url.Values{"service": {"registry.example.com"}}
		if scope != "" {
			q.Set("scope", scope)
		}
		req := httptest.NewRequest(http.MethodGet, "/auth/token?"+q.Encode(), nil)
		req.RemoteAddr = "198.51.100.23:40000"
		if user != "" || pw != "" {
			req.SetBasicAuth(user, pw)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		return w.Code
	}
	cases := []struct {
		user, pw, scope string
		want            int
	}{
		{"bob", "wrong", "repository:app:pull", 401},
		{"alice", "whatever", "", 401},
		{`x client_ip=203.0.113.66 status=401`, "pw", "", 401},
		{`evil" client_ip="203.0.113.67`, "pw", "", 401},
		{"bob", "wrong", "repository:a client_ip=203.0.113.68:pull", 400},
		{"bob", "right", "repository:app:pull", 200},
		{"bob", "right", "", 200},
	}
	for _, c := range cases {
		if got := do(c.user, c.pw, c.scope); got != c.want {
			t.Fatalf("token request as %q: status %d, want %d", c.user, got, c.want)
		}
		if c.want == 401 {
			failures++
		}
	}
	return buf.String(), failures
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
	if len(out) != 3 {
		t.Fatalf("found %d failregex lines in the filter, want 3", len(out))
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

// TestFilterMatchesServeLog keeps the filter and regctl serve's log line
// in step: it fails if internal/token changes the "authentication failed"
// line (message, key order, status) in either format.
func TestFilterMatchesServeLog(t *testing.T) {
	c := variants[0].config(t)
	res := goFailregexes(t, c)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			log, failures := serveLog(t, format)
			matched := 0
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				if !strings.Contains(line, "authentication failed") && !strings.Contains(line, "token issued") {
					continue
				}
				host, ok := goMatch(res, line)
				if strings.Contains(line, "token issued") {
					if ok {
						t.Errorf("a successful login matched: %s", line)
					}
					continue
				}
				if !ok {
					t.Errorf("a failure did not match the filter: %s", line)
					continue
				}
				matched++
				if host != "198.51.100.23" {
					t.Errorf("matched host %s, want the client 198.51.100.23 (smuggled in by a user name or scope?): %s", host, line)
				}
			}
			if matched != failures {
				t.Errorf("%d failures matched, want %d; log:\n%s", matched, failures, log)
			}

			// And the real fail2ban agrees.
			logfile := filepath.Join(t.TempDir(), "serve.log")
			if err := os.WriteFile(logfile, []byte(log), 0o644); err != nil {
				t.Fatal(err)
			}
			f2b := fail2banRegex(t, logfile, c)
			if f2b.matched != failures {
				t.Errorf("fail2ban-regex matched %d lines, want %d; log:\n%s", f2b.matched, failures, log)
			}
			for _, h := range f2b.hosts {
				if h != "198.51.100.23" {
					t.Errorf("fail2ban-regex found host %s", h)
				}
			}
		})
	}
}

func TestFilterIgnoresOtherLines(t *testing.T) {
	c := variants[0].config(t)
	res := goFailregexes(t, c)
	for _, line := range []string{
		`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=200 host=r ua="docker" rt=0.001`,
		`2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/v2/" status=401 host=r ua="docker" rt=0.001`,
		`203.0.113.7 - - [02/Jan/2026:03:04:05 +0000] "GET /v2/ HTTP/1.1" 401 87 "-" "docker/27" rt=0.001`,
		`203.0.113.7 - - [02/Jan/2026:03:04:05 +0000] "GET /auth/token HTTP/1.1" 401 0 "-" "docker/27" rt=0.001`,
		`time=2026-01-02T03:04:05.000Z level=WARN msg="bad token request" user=bob client_ip=203.0.113.7 grant=password status=400 requested="" reason=x`,
		`time=2026-01-02T03:04:05.000Z level=INFO msg="token issued" user=bob client_ip=203.0.113.7 grant=password status=200 requested="" granted=""`,
	} {
		if host, ok := goMatch(res, line); ok {
			t.Errorf("matched %s in: %s", host, line)
		}
	}
	if host, ok := goMatch(res, `2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri="/auth/token" status=401 host=r ua="x" rt=0.001`); !ok || host != "203.0.113.7" {
		t.Errorf("nginx failure line: %q %v", host, ok)
	}
}
