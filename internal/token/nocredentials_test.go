package token

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// countingFixture is a fixture whose log, audit log and metrics the test
// reads back.
type countingFixture struct {
	*fixture
	log   *bytes.Buffer
	audit *bytes.Buffer
	alog  *AuditLog
	mh    http.Handler
}

func newCountingFixture(t *testing.T) *countingFixture {
	t.Helper()
	f := &countingFixture{fixture: newFixture(t), log: new(bytes.Buffer), audit: new(bytes.Buffer)}
	f.srv.log = slog.New(slog.NewTextHandler(f.log, nil))
	f.alog = NewAuditLog(f.audit, f.srv.log)
	t.Cleanup(func() { _ = f.alog.Close() })
	f.srv.SetAudit(f.alog)
	f.mh = f.srv.MetricsHandler(f.srv.Metrics(MetricsOptions{}))
	return f
}

// requests is regctl_token_requests_total{result} summed over grants.
func (f *countingFixture) requests(t *testing.T, result string) float64 {
	t.Helper()
	sum := 0.0
	for _, g := range grantNames {
		v, _ := metricValue(scrape(t, f.mh), "regctl_token_requests_total", "result", result, "grant", g)
		sum += v
	}
	return sum
}

// auditResults are the result fields of the audit lines written so far.
func (f *countingFixture) auditResults(t *testing.T) []string {
	t.Helper()
	if err := f.alog.Close(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(f.audit.String()), "\n") {
		var rec AuditRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, rec.Result)
	}
	return out
}

// buckets is how many limit buckets the server keeps (client, account).
func (f *countingFixture) buckets() (int, int) {
	return f.srv.limits.ip.cache.Len(), f.srv.limits.account.cache.Len()
}

// TestNoCredentialsIsNotAFailedLogin: a token request without credentials
// (every client's first, every anonymous pull, a POST password grant
// without a user name) is answered as before, 401 with the challenge for
// a GET, but it is not a failed login: it spends neither login limit, is
// not logged as "authentication failed" (the line fail2ban matches), is
// not counted as result="unauthorized", and carries no failed-login mark
// for nginx's log. Sent more often than the per-address burst, from one
// address, it leaves the next wrong password a 401 rather than a 429.
func TestNoCredentialsIsNotAFailedLogin(t *testing.T) {
	withAccount := scopes("repository:test/app:pull")
	withAccount.Set("account", "waldi")
	for _, tt := range []struct {
		name string
		do   func(f *fixture) *httptest.ResponseRecorder
		want int
	}{
		{"GET without Authorization", func(f *fixture) *httptest.ResponseRecorder {
			return f.get("", "", scopes("repository:test/app:pull"))
		}, http.StatusUnauthorized},
		{"GET with only account", func(f *fixture) *httptest.ResponseRecorder {
			return f.get("", "", withAccount)
		}, http.StatusUnauthorized},
		{"POST password grant without username or password", func(f *fixture) *httptest.ResponseRecorder {
			return f.post(url.Values{"grant_type": {"password"}, "service": {testService}, "scope": {"repository:test/app:pull"}})
		}, http.StatusBadRequest},
		{"POST password grant with both empty", func(f *fixture) *httptest.ResponseRecorder {
			return f.post(url.Values{"grant_type": {"password"}, "username": {""}, "password": {""}, "service": {testService}})
		}, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newCountingFixture(t)
			n := f.srv.cfg.FailLimitIP.Burst + 5
			for i := range n {
				rec := tt.do(f.fixture)
				if rec.Code != tt.want {
					t.Fatalf("request %d: status %d, want %d: %s", i, rec.Code, tt.want, rec.Body)
				}
				if tt.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") != `Basic realm="regctl"` {
					t.Errorf("request %d: WWW-Authenticate %q, want the challenge", i, rec.Header().Get("WWW-Authenticate"))
				}
				if v := rec.Header().Get(loginFailedHeader); v != "" {
					t.Errorf("request %d: %s: %s, the mark of a failed login", i, loginFailedHeader, v)
				}
			}

			if c, a := f.buckets(); c != 0 || a != 0 {
				t.Errorf("%d requests without credentials left %d client and %d account buckets, want none: they spent the login limits", n, c, a)
			}
			if got := f.requests(t, "unauthorized"); got != 0 {
				t.Errorf(`regctl_token_requests_total{result="unauthorized"} = %v, want 0`, got)
			}
			if tt.want == http.StatusUnauthorized {
				if got, _ := metricValue(scrape(t, f.mh), "regctl_token_requests_total", "result", "credentials_required", "grant", "none"); got != float64(n) {
					t.Errorf(`regctl_token_requests_total{result="credentials_required",grant="none"} = %v, want %d`, got, n)
				}
			}
			log := f.log.String()
			if i := strings.Index(log, `msg="authentication failed"`); i >= 0 {
				line, _, _ := strings.Cut(log[i:], "\n")
				t.Errorf("a request without credentials was logged as a failed login: %s", line)
			}
			if want := `level=INFO msg="credentials required" user="" client_ip=192.0.2.1 grant=none status=401 `; tt.want == http.StatusUnauthorized {
				if got := strings.Count(log, want); got != n {
					t.Errorf("%d lines with %s, want %d", got, want, n)
				}
			}

			// The address's limit is whole: the burst of wrong passwords
			// gets 401, and only the next one 429.
			for i := range f.srv.cfg.FailLimitIP.Burst {
				if rec := f.get("waldi", "wrong", scopes()); rec.Code != http.StatusUnauthorized {
					t.Fatalf("wrong password %d after the requests without credentials: %d, want 401", i+1, rec.Code)
				}
			}
			if rec := f.get("waldi", "wrong", scopes()); rec.Code != http.StatusTooManyRequests {
				t.Errorf("wrong password past the burst: %d, want 429", rec.Code)
			}

			results := f.auditResults(t)
			want := map[int]string{http.StatusUnauthorized: "credentials_required", http.StatusBadRequest: "bad_request"}[tt.want]
			for i, r := range results[:n] {
				if r != want {
					t.Errorf("audit line %d: result %q, want %q", i, r, want)
					break
				}
			}
		})
	}
}

// TestFailedLoginsStillCount: every kind of failed login (a wrong
// password by GET or POST, an unknown user, a disabled or an expired
// account) still spends the login limits, is logged as "authentication
// failed", is counted as result="unauthorized" and carries the mark of a
// failed login for nginx's log.
func TestFailedLoginsStillCount(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(f *fixture)
		do    func(f *fixture) *httptest.ResponseRecorder
		grant string
	}{
		{"wrong password, GET", nil, func(f *fixture) *httptest.ResponseRecorder {
			return f.get("waldi", "wrong", scopes("repository:test/app:pull"))
		}, "basic"},
		{"wrong password, POST", nil, func(f *fixture) *httptest.ResponseRecorder {
			return f.post(url.Values{"grant_type": {"password"}, "username": {"waldi"}, "password": {"wrong"}, "service": {testService}})
		}, "password"},
		{"empty password, POST", nil, func(f *fixture) *httptest.ResponseRecorder {
			return f.post(url.Values{"grant_type": {"password"}, "username": {"waldi"}, "service": {testService}})
		}, "password"},
		{"unknown user", nil, func(f *fixture) *httptest.ResponseRecorder {
			return f.get("nobody", "x", scopes())
		}, "basic"},
		{"disabled account", func(f *fixture) {
			u, _ := f.st.GetUser(t.Context(), "bob")
			u.Disabled = true
			f.st.setUser(*u)
		}, func(f *fixture) *httptest.ResponseRecorder {
			return f.get("bob", "bob-secret", scopes())
		}, "basic"},
		{"expired account", func(f *fixture) {
			u, _ := f.st.GetUser(t.Context(), "bob")
			u.ExpiresAt = ptr(f.clock.Now().Add(-time.Hour))
			f.st.setUser(*u)
		}, func(f *fixture) *httptest.ResponseRecorder {
			return f.get("bob", "bob-secret", scopes())
		}, "basic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newCountingFixture(t)
			if tt.setup != nil {
				tt.setup(f.fixture)
			}
			burst := f.srv.cfg.FailLimitIP.Burst
			for i := range burst {
				rec := tt.do(f.fixture)
				if rec.Code != http.StatusUnauthorized {
					t.Fatalf("attempt %d: status %d, want 401: %s", i+1, rec.Code, rec.Body)
				}
				if got := rec.Header().Get(loginFailedHeader); got != "failed" {
					t.Errorf("attempt %d: %s %q, want failed", i+1, loginFailedHeader, got)
				}
				if rec.Header().Get("WWW-Authenticate") != `Basic realm="regctl"` {
					t.Errorf("attempt %d: WWW-Authenticate %q", i+1, rec.Header().Get("WWW-Authenticate"))
				}
			}
			if rec := tt.do(f.fixture); rec.Code != http.StatusTooManyRequests {
				t.Errorf("attempt past the burst: %d, want 429", rec.Code)
			}
			if c, _ := f.buckets(); c != 1 {
				t.Errorf("%d client buckets, want the failing client's", c)
			}
			if got, _ := metricValue(scrape(t, f.mh), "regctl_token_requests_total", "result", "unauthorized", "grant", tt.grant); got != float64(burst) {
				t.Errorf(`regctl_token_requests_total{result="unauthorized",grant=%q} = %v, want %d`, tt.grant, got, burst)
			}
			if got := f.requests(t, "credentials_required"); got != 0 {
				t.Errorf(`regctl_token_requests_total{result="credentials_required"} = %v, want 0`, got)
			}
			want := `level=WARN msg="authentication failed" `
			if n := strings.Count(f.log.String(), want); n != burst {
				t.Errorf("%d lines with %s, want %d; log:\n%s", n, want, burst, f.log)
			}
			for i, r := range f.auditResults(t)[:burst] {
				if r != "unauthorized" {
					t.Errorf("audit line %d: result %q, want unauthorized", i, r)
					break
				}
			}
		})
	}
}
