package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics from h and parses the text exposition.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue is the value of the series name{labels}; ok is false if it
// is absent.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	notAfter := f.clock.Now().Add(90 * 24 * time.Hour)
	certs := t.TempDir()
	tlsNotAfter := f.clock.Now().Add(40 * 24 * time.Hour).Truncate(time.Second)
	writeTestCert(t, filepath.Join(certs, "live", "registry.example.com", "fullchain.pem"), tlsNotAfter)
	if err := os.MkdirAll(filepath.Join(certs, "live", "broken.example.com"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, "live", "broken.example.com", "fullchain.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := f.srv.Metrics(MetricsOptions{Version: "v1.2.3", SigningCertNotAfter: func() time.Time { return notAfter }, CertsDir: certs})
	mh := f.srv.MetricsHandler(reg)

	// Known requests.
	f.get("waldi", "waldi-secret", scopes("repository:test/app:pull")) // issued, bcrypt
	f.get("waldi", "waldi-secret", scopes("repository:test/app:pull")) // issued, cached
	f.get("waldi", "nope", scopes())                                   // unauthorized, bcrypt: only a right password is cached
	f.get("nobody", "x", scopes())                                     // unauthorized, bcrypt (dummy)
	f.get("", "", scopes())                                            // credentials_required: anonymous, not a failed login
	f.post(url.Values{"grant_type": {"magic"}})                        // bad request, grant unknown
	for range f.srv.cfg.FailLimitIP.Burst - 2 {                        // 192.0.2.1 fails up to its burst, with bcrypt: reader is not cached
		f.get("reader", "nope", scopes())
	}
	f.get("reader", "reader-secret", scopes()) // rate limited (ip)
	f.clock.Advance(7 * time.Second)           // the rules are now 7 s old: stale, 503
	f.get("bob", "bob-secret", scopes())

	fams := scrape(t, mh)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"regctl_token_requests_total", []string{"result", "issued", "grant", "basic"}, 2},
		{"regctl_token_requests_total", []string{"result", "unauthorized", "grant", "basic"}, 20},
		{"regctl_token_requests_total", []string{"result", "credentials_required", "grant", "none"}, 1},
		{"regctl_token_requests_total", []string{"result", "unauthorized", "grant", "none"}, 0},
		{"regctl_token_requests_total", []string{"result", "bad_request", "grant", "unknown"}, 1},
		{"regctl_token_requests_total", []string{"result", "rate_limited", "grant", "basic"}, 1},
		{"regctl_token_requests_total", []string{"result", "unavailable", "grant", "basic"}, 1},
		{"regctl_token_requests_total", []string{"result", "issued", "grant", "refresh_token"}, 0},
		{"regctl_token_request_duration_seconds", nil, 26},
		{"regctl_rate_limited_total", []string{"scope", "ip"}, 1},
		{"regctl_rate_limited_total", []string{"scope", "account"}, 0},
		{"regctl_credential_cache_hits_total", nil, 1},
		{"regctl_credential_cache_misses_total", nil, 21}, // waldi twice, nobody, reader's 18 failures
		{"regctl_rules_reload_age_seconds", nil, 7},
		{"regctl_signing_cert_expiry_seconds", nil, (90*24*time.Hour - 7*time.Second).Seconds()},
		{"regctl_tls_cert_expiry_seconds", []string{"name", "registry.example.com"}, tlsNotAfter.Sub(f.clock.Now()).Seconds()},
		{"regctl_build_info", []string{"version", "v1.2.3", "goversion", runtime.Version()}, 1},
		{"regctl_store_errors_total", []string{"op", "list_rules"}, 0},
		{"regctl_audit_dropped_total", nil, 0},
	} {
		got, ok := metricValue(fams, c.name, c.labels...)
		if !ok || math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s%v = %v (present %t), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := metricValue(fams, "regctl_tls_cert_expiry_seconds", "name", "broken.example.com"); ok {
		t.Error("an unreadable fullchain.pem has a value")
	}

	// Store errors count, and the reload age keeps growing while the
	// store is down.
	f.st.setDown(true)
	_ = f.srv.rules.reload(t.Context())
	f.clock.Advance(3 * time.Second)
	f.get("newuser", "x", scopes()) // 503 before any store query: the rules are gone
	fams = scrape(t, mh)
	if v, _ := metricValue(fams, "regctl_store_errors_total", "op", "list_rules"); v != 1 {
		t.Errorf("store errors after a failed reload: %v, want 1", v)
	}
	if v, _ := metricValue(fams, "regctl_rules_reload_age_seconds"); v != 10 {
		t.Errorf("reload age with the store down: %v, want 10", v)
	}
	f.st.setDown(false)

	// Prometheus naming, and no label that could name a user or repository.
	allowed := map[string]bool{"result": true, "grant": true, "scope": true, "op": true, "name": true, "version": true, "goversion": true}
	for name, mf := range fams {
		if !strings.HasPrefix(name, "regctl_") {
			continue
		}
		if mf.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s lacks _total", name)
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !allowed[lp.GetName()] {
					t.Errorf("%s has label %q", name, lp.GetName())
				}
			}
		}
	}
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v := lp.GetValue(); v == "waldi" || v == "reader" || strings.Contains(v, "test/app") {
					t.Errorf("%s carries %q", mf.GetName(), v)
				}
			}
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// The metrics listener also answers /livez and /readyz.
	for path, want := range map[string]int{"/livez": 200, "/readyz": 200} {
		_ = f.srv.rules.reload(t.Context())
		rec := httptest.NewRecorder()
		mh.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s on the metrics handler: %d", path, rec.Code)
		}
	}
	// The token endpoint does not serve metrics.
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics on the token handler: %d, want 404", rec.Code)
	}
}

// TestMetricsStoreErrors: a failed user lookup is a store error; an unknown
// user is not.
func TestMetricsStoreErrors(t *testing.T) {
	f := newFixture(t)
	f.get("nobody", "x", scopes())
	f.st.setDown(true)
	f.get("waldi", "waldi-secret", scopes()) // the rules are loaded; the user query fails: 503
	fams := scrape(t, f.srv.MetricsHandler(f.srv.Metrics(MetricsOptions{})))
	if v, _ := metricValue(fams, "regctl_store_errors_total", "op", "get_user"); v != 1 {
		t.Errorf("get_user errors %v, want 1", v)
	}
	if v, _ := metricValue(fams, "regctl_token_requests_total", "result", "unavailable", "grant", "basic"); v != 1 {
		t.Errorf("unavailable %v, want 1", v)
	}
	if _, ok := fams["regctl_signing_cert_expiry_seconds"]; ok {
		t.Error("signing cert expiry without a source")
	}
}

func writeTestCert(t *testing.T, path string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: filepath.Base(filepath.Dir(path))},
		NotBefore:    notAfter.Add(-90 * 24 * time.Hour),
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkHardeningOverhead is what this file's and ratelimit.go's hooks
// add to every warm password request: the limiter's admission and
// settlement of a successful attempt (a token taken and given back from
// the client's and the account's buckets) and finish (latency histogram,
// request counter), without the audit log.
func BenchmarkHardeningOverhead(b *testing.B) {
	f := newFixture(b)
	r := httptest.NewRequest(http.MethodGet, "/auth/token", nil)
	now := f.clock.Now()
	client := clientKey(netip.MustParseAddr("192.0.2.1"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := decision{ip: client.Addr(), start: time.Now(), now: now, grant: grantBasic}
			var adm admission
			if le := f.srv.limits.admit(&adm, client, "waldi", now); le != nil {
				b.Fatal(le)
			}
			f.srv.limits.settle(&adm, false, now)
			d.status = http.StatusOK
			f.srv.finish(r, &d)
		}
	})
}
