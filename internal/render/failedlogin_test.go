package render_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// TestFilterCountsOnlyFailedLoginsThroughNginx: real nginx, from the
// rendered configuration, in front of regctl's real token handler. Token
// requests without credentials (a GET without Authorization, with or
// without account=, on /auth/token and /auth; a POST password grant
// without a user name) get their 401 (400 for the POST) as before, but
// the real fail2ban-regex, with the rendered filter, matches none of the
// lines nginx and regctl serve log for them. Failed logins (a wrong
// password by GET and by POST, an empty password, an unknown user) match,
// each once in either log, from the client's address. The client never
// sees the header that carries regctl serve's mark to nginx's log.
func TestFilterCountsOnlyFailedLoginsThroughNginx(t *testing.T) {
	bin := nginxBinary(t)
	testenv.RequireBinary(t, "", "fail2ban-regex", "Debian's fail2ban (apt-get install -y fail2ban)")
	c := variants[0].config(t)

	var serveLog testenv.SyncBuffer
	ts := httptest.NewServer(tokenHandler(t, slog.NewTextHandler(&serveLog, nil), defaultLimits))
	defer ts.Close()
	s := newNginxSite(t, c, "127.0.0.1:9", strings.TrimPrefix(ts.URL, "http://"))
	p := testenv.Start(t, "nginx", nil, bin, s.args("-g", "daemon off;")...)
	p.WaitReady(t, 20*time.Second, testenv.HTTPCheck(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.probe), 200))

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.roots, ServerName: c.AuthDomain()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", s.https))
		},
	}}
	base := "https://" + c.AuthDomain()
	query := url.Values{"service": {"registry.example.com"}, "scope": {"repository:app:pull"}}
	withAccount := url.Values{"service": {"registry.example.com"}, "account": {"bob"}, "scope": {"repository:app:pull"}}
	type request struct {
		name      string
		path      string
		query     url.Values // GET
		user, pw  string     // GET: Basic auth when either is set
		form      url.Values // POST when set
		want      int
		challenge bool // the answer carries the WWW-Authenticate challenge
	}
	send := func(r request) {
		t.Helper()
		var req *http.Request
		if r.form != nil {
			req, _ = http.NewRequest(http.MethodPost, base+r.path, strings.NewReader(r.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, _ = http.NewRequest(http.MethodGet, base+r.path+"?"+r.query.Encode(), nil)
			if r.user != "" || r.pw != "" {
				req.SetBasicAuth(r.user, r.pw)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.want {
			t.Fatalf("%s: status %d, want %d", r.name, resp.StatusCode, r.want)
		}
		if r.challenge && resp.Header.Get("WWW-Authenticate") != `Basic realm="regctl"` {
			t.Errorf("%s: WWW-Authenticate %q, want the challenge", r.name, resp.Header.Get("WWW-Authenticate"))
		}
		if v := resp.Header.Get("X-Regctl-Login"); v != "" {
			t.Errorf("%s: the client got X-Regctl-Login: %s, which is for nginx's log only", r.name, v)
		}
	}
	// phase sends requests and returns the lines nginx's token log and
	// regctl serve's log gained, one each per request.
	nginxSeen, serveSeen := 0, 0
	phase := func(reqs []request) (nginxLines, serveLines []string) {
		t.Helper()
		for _, r := range reqs {
			send(r)
		}
		// nginx writes its log line as the request ends, perhaps after the
		// client has its answer.
		var all []string
		if err := testenv.Poll(10*time.Second, 20*time.Millisecond, func() error {
			b, err := os.ReadFile(s.data.AuthLog)
			if err != nil {
				return err
			}
			all = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(all) < nginxSeen+len(reqs) {
				return fmt.Errorf("nginx's token log has %d lines, want %d", len(all), nginxSeen+len(reqs))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		nginxLines, nginxSeen = all[nginxSeen:], len(all)
		var sl []string // regctl serve's token request lines, without its others
		for _, l := range strings.Split(serveLog.String(), "\n") {
			if serveMsg(l) != "" {
				sl = append(sl, l)
			}
		}
		serveLines, serveSeen = sl[serveSeen:], len(sl)
		if len(nginxLines) != len(reqs) || len(serveLines) != len(reqs) {
			t.Fatalf("%d requests gave %d lines in nginx's token log and %d in regctl serve's:\n%s\n%s",
				len(reqs), len(nginxLines), len(serveLines), strings.Join(nginxLines, "\n"), strings.Join(serveLines, "\n"))
		}
		return nginxLines, serveLines
	}

	anonNginx, anonServe := phase([]request{
		{name: "GET without Authorization", path: "/auth/token", query: query, want: 401, challenge: true},
		{name: "GET without Authorization, again", path: "/auth/token", query: query, want: 401, challenge: true},
		{name: "GET with only account", path: "/auth/token", query: withAccount, want: 401, challenge: true},
		{name: "GET /auth without Authorization", path: "/auth", query: query, want: 401, challenge: true},
		{name: "POST password grant without username or password", path: "/auth/token",
			form: url.Values{"grant_type": {"password"}, "service": {"registry.example.com"}}, want: 400},
	})
	failedNginx, failedServe := phase([]request{
		{name: "GET with a wrong password", path: "/auth/token", query: query, user: "bob", pw: "wrong", want: 401, challenge: true},
		{name: "POST with a wrong password", path: "/auth/token",
			form: url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"wrong"}, "service": {"registry.example.com"}}, want: 401, challenge: true},
		{name: "POST with an empty password", path: "/auth",
			form: url.Values{"grant_type": {"password"}, "username": {"bob"}, "service": {"registry.example.com"}}, want: 401, challenge: true},
		{name: "GET for an unknown user", path: "/auth/token", query: query, user: "alice", pw: "whatever", want: 401, challenge: true},
	})
	okNginx, okServe := phase([]request{
		{name: "GET with the right password", path: "/auth/token", query: query, user: "bob", pw: "right", want: 200},
	})

	// Not vacuous: the logs hold what the filter must tell apart.
	for _, l := range anonNginx[:4] {
		if !strings.Contains(l, ` status=401 login=- `) {
			t.Errorf("nginx logged a 401 without credentials as %s, want status=401 login=-", l)
		}
	}
	for _, l := range failedNginx {
		if !strings.Contains(l, ` status=401 login=failed `) {
			t.Errorf("nginx logged a failed login as %s, want status=401 login=failed", l)
		}
	}
	for _, l := range anonServe[:4] {
		if !strings.Contains(l, `msg="credentials required"`) || !strings.Contains(l, ` status=401 `) {
			t.Errorf("regctl serve logged a request without credentials as %s", l)
		}
	}
	for _, l := range failedServe {
		if !strings.Contains(l, `msg="authentication failed"`) {
			t.Errorf("regctl serve logged a failed login as %s", l)
		}
	}

	dir := t.TempDir()
	for _, tt := range []struct {
		name  string
		lines []string
		want  int
	}{
		{"nginx's token log, requests without credentials", anonNginx, 0},
		{"regctl serve's log, requests without credentials", anonServe, 0},
		{"nginx's token log, failed logins", failedNginx, len(failedNginx)},
		{"regctl serve's log, failed logins", failedServe, len(failedServe)},
		{"nginx's token log, a login", okNginx, 0},
		{"regctl serve's log, a login", okServe, 0},
	} {
		f := filepath.Join(dir, strings.NewReplacer(" ", "-", ",", "", "'", "").Replace(tt.name)+".log")
		writeFile(t, f, []byte(strings.Join(tt.lines, "\n")+"\n"), 0o644)
		res := fail2banRegex(t, f, c)
		if res.matched != tt.want {
			t.Errorf("%s: fail2ban-regex matched %d lines, want %d:\n%s", tt.name, res.matched, tt.want, strings.Join(tt.lines, "\n"))
		}
		for _, h := range res.hosts {
			if h != "127.0.0.1" {
				t.Errorf("%s: fail2ban-regex found host %s, want 127.0.0.1", tt.name, h)
			}
		}
	}
}
