package token

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// Metrics. The server counts always (a few atomic adds per request, no
// allocation); Server.Metrics registers the counts on a registry of its own
// for a listener that nginx does not expose (regctl serve
// --metrics-listen). No metric carries a user or repository label.

// The result label of regctl_token_requests_total, by HTTP status. A 401
// is "unauthorized" only for a failed login: the challenge to a request
// without credentials (noCredentials) is "credentials_required", so
// routine first requests and anonymous pulls do not look like an attack.
var resultNames = [...]string{"issued", "bad_request", "unauthorized", "credentials_required", "rate_limited", "unavailable", "error"}

func resultIndex(status int, noCredentials bool) int {
	switch status {
	case http.StatusOK:
		return 0
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return 1
	case http.StatusUnauthorized:
		if noCredentials {
			return 3
		}
		return 2
	case http.StatusTooManyRequests:
		return 4
	case http.StatusServiceUnavailable:
		return 5
	}
	return 6
}

// The grant label: how the request authenticated ("unknown" when it could
// not be parsed).
var grantNames = [...]string{string(grantBasic), string(grantPassword), string(grantRefresh), string(grantAnonymous), "unknown"}

func grantIndex(g grant) int {
	switch g {
	case grantBasic:
		return 0
	case grantPassword:
		return 1
	case grantRefresh:
		return 2
	case grantAnonymous:
		return 3
	}
	return 4
}

// Store operations, the op label of regctl_store_errors_total.
const (
	opGetUser = iota
	opListRules
	opRulesVersion
	opRuleChanges
)

var storeOpNames = [...]string{"get_user", "list_rules", "rules_version", "rule_changes"}

// metrics are the server's instruments. The labelled counters are resolved
// once, so counting a request is one atomic add and one histogram
// observation.
type metrics struct {
	requestsVec *prometheus.CounterVec
	requests    [len(resultNames)][len(grantNames)]prometheus.Counter
	duration    prometheus.Histogram
	storeErrVec *prometheus.CounterVec
	storeErrs   [len(storeOpNames)]prometheus.Counter
	// rulesOK is the server-clock time (UnixNano) at which the last
	// successful rules query started; 0 until one has.
	rulesOK atomic.Int64
}

func newMetrics() *metrics {
	m := &metrics{
		requestsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regctl_token_requests_total",
			Help: "Token requests answered, by result (issued, bad_request, unauthorized, credentials_required, rate_limited, unavailable, error) and grant type (basic, password, refresh_token, none, unknown).",
		}, []string{"result", "grant"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regctl_token_request_duration_seconds",
			Help:    "Time to answer a token request, from the handler's start to the response written.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		storeErrVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regctl_store_errors_total",
			Help: "Store queries of the token server that failed (not found is not an error), by operation.",
		}, []string{"op"}),
	}
	for r, rn := range resultNames {
		for g, gn := range grantNames {
			m.requests[r][g] = m.requestsVec.WithLabelValues(rn, gn)
		}
	}
	for i, op := range storeOpNames {
		m.storeErrs[i] = m.storeErrVec.WithLabelValues(op)
	}
	return m
}

// observe counts one answered request.
func (m *metrics) observe(d *decision) {
	m.requests[resultIndex(d.status, d.noCredentials)][grantIndex(d.grant)].Inc()
	m.duration.Observe(time.Since(d.start).Seconds())
}

// finish runs after every token request: it counts the request and
// writes the audit line.
func (s *Server) finish(r *http.Request, d *decision) {
	s.metrics.observe(d)
	if s.audit != nil {
		s.audit.record(r, d)
	}
}

// instrumentedStore counts a Store's failed queries and remembers when a
// rules query last succeeded.
type instrumentedStore struct {
	Store
	m   *metrics
	now func() time.Time
}

func (s instrumentedStore) GetUser(ctx context.Context, username string) (*store.User, error) {
	u, err := s.Store.GetUser(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.m.storeErrs[opGetUser].Inc()
	}
	return u, err
}

func (s instrumentedStore) ListRules(ctx context.Context) ([]acl.Rule, error) {
	start := s.now()
	rules, err := s.Store.ListRules(ctx)
	s.rulesQueried(opListRules, start, err)
	return rules, err
}

func (s instrumentedStore) rulesQueried(op int, start time.Time, err error) {
	if err != nil {
		s.m.storeErrs[op].Inc()
		return
	}
	s.m.rulesOK.Store(start.UnixNano())
}

// instrumentedVersionedStore keeps the optional rulesVersioner visible to
// the policy loader.
type instrumentedVersionedStore struct {
	instrumentedStore
	v rulesVersioner
}

func (s instrumentedVersionedStore) RulesVersion(ctx context.Context) (int64, error) {
	start := s.now()
	v, err := s.v.RulesVersion(ctx)
	s.rulesQueried(opRulesVersion, start, err)
	return v, err
}

// instrumentedFedStore keeps the optional store.RuleChangeSource visible
// to the policy loader.
type instrumentedFedStore struct {
	instrumentedStore
	f store.RuleChangeSource
}

func (s instrumentedFedStore) RuleChangesSince(ctx context.Context, since store.RuleCursor) (store.RuleChanges, error) {
	start := s.now()
	ch, err := s.f.RuleChangesSince(ctx, since)
	s.rulesQueried(opRuleChanges, start, err)
	return ch, err
}

func instrumentStore(st Store, m *metrics, now func() time.Time) Store {
	is := instrumentedStore{Store: st, m: m, now: now}
	if f, ok := st.(store.RuleChangeSource); ok {
		return instrumentedFedStore{is, f}
	}
	if v, ok := st.(rulesVersioner); ok {
		return instrumentedVersionedStore{is, v}
	}
	return is
}

// authStats are the authenticator's counts (auth.go increments them).
type authStats struct {
	cacheHits atomic.Uint64 // passwords checked against a cached credential: no bcrypt
	bcrypts   atomic.Uint64 // bcrypt comparisons, the dummy one for unknown users included
}

// MetricsOptions are what Metrics needs from outside the server.
type MetricsOptions struct {
	// Version is regctl's version, for regctl_build_info.
	Version string
	// SigningCertNotAfter returns the expiry of the certificate tokens are
	// currently signed with (KeyReloader.Current().NotAfter); nil leaves
	// regctl_signing_cert_expiry_seconds out.
	SigningCertNotAfter func() time.Time
	// CertsDir is ROOT/certs of a regctl install: the expiry of each
	// live/NAME/fullchain.pem is regctl_tls_cert_expiry_seconds{name}.
	// Empty leaves the metric out.
	CertsDir string
}

// Metrics returns a new registry (not the global one) holding the server's
// metrics, the Go runtime's and the process's.
func (s *Server) Metrics(o MetricsOptions) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	m := s.metrics
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requestsVec, m.duration, m.storeErrVec,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "regctl_rules_reload_age_seconds",
			Help: "Seconds since a rules reload last reached the store (+Inf before the first). Past 2×reload interval + store timeout the server answers 503.",
		}, func() float64 {
			ok := m.rulesOK.Load()
			if ok == 0 {
				return math.Inf(1)
			}
			return s.now().Sub(time.Unix(0, ok)).Seconds()
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "regctl_credential_cache_hits_total",
			Help: "Correct passwords of active users recognised from a cached verified credential, without bcrypt.",
		}, func() float64 { return float64(s.auth.stats.cacheHits.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "regctl_credential_cache_misses_total",
			Help: "Passwords checked with bcrypt: no cached credential, a wrong password, an inactive or an unknown user.",
		}, func() float64 { return float64(s.auth.stats.bcrypts.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "regctl_audit_dropped_total",
			Help: "Audit log lines lost because the writer fell behind or could not write.",
		}, func() float64 {
			if s.audit == nil {
				return 0
			}
			return float64(s.audit.dropped.Load())
		}),
	)
	for _, scope := range []string{"ip", "account"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "regctl_rate_limited_total",
			Help:        "Password requests refused with 429 by the failed-authentication limits, by scope (ip, account).",
			ConstLabels: prometheus.Labels{"scope": scope},
		}, func() float64 {
			if s.limits == nil {
				return 0
			}
			if scope == "ip" {
				return float64(s.limits.limitedIP.Load())
			}
			return float64(s.limits.limitedAccount.Load())
		}))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "regctl_build_info",
		Help:        "Always 1; the labels tell regctl's version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": o.Version, "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	if o.SigningCertNotAfter != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "regctl_signing_cert_expiry_seconds",
			Help: "Seconds until the token signing certificate expires (negative once it has): every token is rejected after that.",
		}, func() float64 { return o.SigningCertNotAfter().Sub(s.now()).Seconds() }))
	}
	if o.CertsDir != "" {
		reg.MustRegister(&tlsCertCollector{dir: o.CertsDir, now: s.now})
	}
	return reg
}

// MetricsHandler serves GET /metrics from reg, plus /livez and /readyz as
// Handler does, for the metrics listener.
func (s *Server) MetricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	return mux
}

// tlsCertCollector reads ROOT/certs/live/*/fullchain.pem at each scrape: a
// renewal shows up without a restart.
type tlsCertCollector struct {
	dir string
	now func() time.Time
}

var tlsCertDesc = prometheus.NewDesc("regctl_tls_cert_expiry_seconds",
	"Seconds until the TLS certificate in ROOT/certs/live/NAME/fullchain.pem expires (negative once it has).",
	[]string{"name"}, nil)

func (c *tlsCertCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tlsCertDesc }

func (c *tlsCertCollector) Collect(ch chan<- prometheus.Metric) {
	paths, _ := filepath.Glob(filepath.Join(c.dir, "live", "*", "fullchain.pem"))
	now := c.now()
	for _, p := range paths {
		notAfter, err := leafNotAfter(p)
		if err != nil {
			continue // one unreadable file must not fail the whole scrape; regctl doctor names it
		}
		ch <- prometheus.MustNewConstMetric(tlsCertDesc, prometheus.GaugeValue,
			notAfter.Sub(now).Seconds(), filepath.Base(filepath.Dir(p)))
	}
}

// leafNotAfter is the expiry of the first certificate in a PEM file.
func leafNotAfter(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return time.Time{}, errors.New("no certificate")
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return time.Time{}, err
		}
		return c.NotAfter, nil
	}
}
