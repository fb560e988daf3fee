// Package token is regctl's Docker registry token server: the
// distribution token-auth protocol (GET with Basic auth, OAuth2 POST with
// password and refresh-token grants), decided by package acl over users and
// rules from a store, signed with keys from package keys.
package token

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/store"
)

// Store is what the token server reads.
type Store interface {
	UserSource
	RuleSource
}

// Server answers token requests.
type Server struct {
	cfg         config.TokenServer
	minter      *Minter
	keyReloader bool // NewKeyReloader was called
	refresh     *refresher
	auth        *authenticator
	rules       *policyLoader
	jwks        []byte
	log         *slog.Logger
	now         func() time.Time
	limits      *failLimiter  // nil when both limits are off (ratelimit.go)
	shared      *sharedLimits // nil unless limits and the store has an attempt log (sharedlimit.go)
	logins      singleflight.Group
	metrics     *metrics  // metrics.go
	audit       *AuditLog // nil: no audit log (audit.go)
}

// New builds a server; call Start before serving.
func New(cfg config.TokenServer, st Store, ks *keys.Set, log *slog.Logger, now func() time.Time) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	m, err := NewMinter(ks, cfg.Issuer, cfg.TokenLifetime, cfg.KeyFormat)
	if err != nil {
		return nil, err
	}
	jwks, err := keys.JWKS([]crypto.PublicKey{ks.Signer.Public()})
	if err != nil {
		return nil, err
	}
	ms := newMetrics()
	attempts, _ := st.(store.AttemptLog)
	st = instrumentStore(st, ms, now)
	s := &Server{
		cfg:     cfg,
		metrics: ms,
		jwks:    jwks,
		minter:  m,
		refresh: newRefresher(ks.RefreshKey, cfg.RefreshLifetime),
		auth:    newAuthenticator(st, cfg.ReloadInterval, cfg.StoreTimeout, cfg.BcryptCost, now),
		rules:   &policyLoader{rules: st, interval: cfg.ReloadInterval, timeout: cfg.StoreTimeout, now: now, log: log},
		log:     log,
		now:     now,
	}
	if !cfg.FailLimitIP.Off() || !cfg.FailLimitAccount.Off() {
		s.limits = newFailLimiter(cfg.FailLimitIP, cfg.FailLimitAccount)
		if attempts != nil {
			s.shared = &sharedLimits{attempts: attempts, l: s.limits, timeout: cfg.StoreTimeout, log: log, now: now}
		}
	}
	return s, nil
}

// Start loads the rules once (an error is logged and retried, the server
// answers 503 meanwhile) and keeps reloading them, and pruning expired
// users from the user cache, until ctx ends.
func (s *Server) Start(ctx context.Context) {
	_ = s.rules.reload(ctx)
	go s.rules.run(ctx)
	go s.auth.pruneEvery(ctx, s.cfg.ReloadInterval)
	if s.shared != nil {
		go every(ctx, attemptsPruneInterval, s.shared.prune)
	}
}

// Handler routes the token endpoint (/auth and /auth/token), the signing
// keys as JWKS (/auth/jwks.json), /livez and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", s.serveToken)
	mux.HandleFunc("/auth/token", s.serveToken)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("GET /auth/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(s.jwks)
	})
	return mux
}

// Ready reports whether tokens can be issued: keys are loaded (they are,
// once New succeeded) and the last rules reload reached the store.
func (s *Server) Ready() error {
	_, err := s.rules.current()
	return err
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// tokenResponse is the body of a successful token request.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// decision collects what one request's log line reports.
type decision struct {
	user      string
	ip        netip.Addr
	grant     grant
	requested []acl.Scope
	granted   []acl.Scope
	service   string // the service the token is for, once known
	status    int
	reason    string
	// noCredentials: the 401 answered a request without credentials, a
	// challenge rather than a failed login.
	noCredentials bool

	// For finish (metrics.go): latency and the audit log.
	start   time.Time
	now     time.Time
	decided []acl.Decider // per requested scope, when the audit log is on
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	d := decision{ip: clientIP(r, s.cfg.TrustedProxies), start: time.Now(), now: now}
	defer func() { s.finish(r, &d); s.logDecision(r.Context(), &d) }()

	req, err := parseRequest(w, r)
	if err != nil {
		s.fail(w, &d, err)
		return
	}
	d.grant, d.requested = req.grant, req.scopes
	d.user = req.username
	// A service this server does not serve is answered 400 only after
	// authentication, so that its list is told to its users alone. A
	// request that names none is for the first (docker_auth takes it as
	// the empty service name instead).
	service, known := s.cfg.Service(req.service)
	if known {
		d.service = service
	}
	policy, err := s.rules.current()
	if err != nil {
		s.fail(w, &d, fmt.Errorf("%w: %v", store.ErrUnavailable, err)) //nolint:errorlint // deliberately one sentinel: callers classify by store.ErrUnavailable; the cause stays text so it cannot match their other checks (context errors)
		return
	}

	u, err := s.authenticate(r.Context(), req, d.ip, now)
	if u != nil {
		d.user = u.Username
	}
	if err != nil {
		s.fail(w, &d, err)
		return
	}
	if req.account != "" && req.account != d.user {
		s.fail(w, &d, badRequest("account %q does not match the authenticated user", truncate(req.account, 100)))
		return
	}
	if !known {
		s.fail(w, &d, badRequest("unknown service %q (this server issues tokens for %s)", truncate(req.service, 100), quoteList(s.cfg.Services)))
		return
	}

	// authenticate has already answered 401 for an inactive account.
	if s.audit != nil {
		// What decided each scope, for the audit line, found by the
		// same evaluation rather than a second one.
		d.decided = make([]acl.Decider, len(req.scopes))
	}
	d.granted, _ = decide(policy, u, service, req.scopes, d.ip, now, d.decided)
	tok, _, err := s.minter.Mint(d.user, service, d.granted, now)
	if err != nil {
		s.fail(w, &d, err)
		return
	}
	resp := tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int(s.minter.Lifetime() / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	}
	if req.offline && u != nil && req.grant != grantRefresh {
		if resp.RefreshToken, err = s.refresh.issue(u.Username, u.PasswordHash, now); err != nil {
			s.fail(w, &d, err)
			return
		}
	}
	d.status = http.StatusOK
	writeJSON(w, http.StatusOK, resp)
}

// authenticate returns the user (nil when anonymous) or an error: an
// *authError (401), a *rateLimitError (429), a *requestError (400) or one
// wrapping store.ErrUnavailable (503).
func (s *Server) authenticate(ctx context.Context, req *tokenRequest, ip netip.Addr, now time.Time) (*store.User, error) {
	var u *store.User
	switch req.grant {
	case grantAnonymous:
		if !s.cfg.AllowAnonymous {
			return nil, errNoCredentials
		}
		return nil, nil
	case grantBasic, grantPassword:
		return s.passwordLogin(ctx, req, clientKey(ip), now)
	case grantRefresh:
		c, err := s.refresh.parse(req.refreshToken, now)
		if err != nil {
			return nil, &authError{reason: err.Error()}
		}
		u, err = s.auth.user(ctx, c.Subject)
		switch {
		case errors.Is(err, errUnknownUser):
			return nil, &authError{reason: "refresh token for unknown user", user: c.Subject}
		case err != nil:
			return nil, err
		}
		if !s.refresh.matches(c, u.PasswordHash) {
			return u, &authError{reason: "refresh token revoked by a password change"}
		}
	}
	return u, activeErr(u, now)
}

// activeErr refuses a user whose account is not active at now.
func activeErr(u *store.User, now time.Time) error {
	if st := u.Status(now); st != store.StatusActive {
		return &authError{reason: "account " + string(st)}
	}
	return nil
}

// loginResult is the outcome of one password login.
type loginResult struct {
	u   *store.User
	err error
}

// passwordLogin authenticates a password request from client, within the
// brute-force limits.
//
// While neither the client's nor the account's bucket is empty, a cached
// credential answers a correct password at once, without touching the
// limits (it cannot reach bcrypt). Every other attempt is admitted (or
// refused with a *rateLimitError) before the store is asked for the user
// or any bcrypt runs, by the local limits and then, if the store keeps
// an attempt log, by the shared ones (sharedlimit.go), and settled with
// its outcome. Identical attempts in flight at once
// (the same client, user and password, as from a CI fleet behind one
// address) share one admission and one bcrypt, and so count as one.
func (s *Server) passwordLogin(ctx context.Context, req *tokenRequest, client netip.Prefix, now time.Time) (*store.User, error) {
	if s.limits.open(client, req.username, now) {
		u, ok, err := s.auth.cached(ctx, req.username, req.password, now)
		if ok || err != nil {
			return u, err
		}
	}
	mac := s.auth.mac(req.username, req.password)
	key := make([]byte, 0, 64+len(req.username))
	key, _ = client.AppendText(key)
	key = append(append(key, 0), req.username...)
	key = append(append(key, 0), mac[:]...)
	v, _, _ := s.logins.Do(string(key), func() (any, error) {
		// The attempt is settled even if its own client gives up: others
		// may share it.
		ctx := context.WithoutCancel(ctx)
		var adm admission
		if s.limits != nil {
			if le := s.limits.admit(&adm, client, req.username, now); le != nil {
				return loginResult{err: le}, nil
			}
			if s.shared != nil {
				if err := s.shared.admit(ctx, &adm, req.username, now); err != nil {
					s.limits.release(&adm, now)
					return loginResult{err: err}, nil
				}
			}
		}
		u, _, err := s.auth.authenticate(ctx, client, req.username, req.password, now)
		switch {
		case errors.Is(err, errUnknownUser):
			err = &authError{reason: "unknown user"}
		case errors.Is(err, errBadCredentials):
			err = &authError{reason: "wrong password"}
		case err == nil:
			err = activeErr(u, now)
		default:
			u = nil
		}
		if s.limits != nil {
			var ae *authError
			failed := errors.As(err, &ae)
			s.limits.settle(&adm, failed, s.now())
			if s.shared != nil {
				s.shared.settle(ctx, &adm, failed)
			}
		}
		return loginResult{u, err}, nil
	})
	r := v.(loginResult)
	return r.u, r.err
}

// authError means 401: the credentials do not identify an active user.
type authError struct {
	reason string
	user   string
}

func (e *authError) Error() string { return e.reason }

// errNoCredentials means 401 for a request that carries no credentials:
// the challenge every client's first token request gets, and every
// anonymous pull. It is not a failed login: it spends no limit, and is
// neither logged nor counted as one.
var errNoCredentials = errors.New("no credentials")

// loginFailedHeader marks a 401 that is a failed login, for nginx's token
// log, which fail2ban reads (log_format regctl_auth in nginx.conf.tmpl
// logs it as login=failed, and proxy_hide_header keeps it from the
// client). nginx cannot tell a failed login from the challenge by itself,
// since a POST carries its credentials in the body, so the server, which
// decided, says so. The filter counts a 401 only with the mark: a client
// cannot put it into the upstream's response.
const loginFailedHeader = "X-Regctl-Login"

func (s *Server) fail(w http.ResponseWriter, d *decision, err error) {
	var re *requestError
	var ae *authError
	var le *rateLimitError
	switch {
	case errors.As(err, &le):
		d.status, d.reason = http.StatusTooManyRequests, le.Error()
		writeRateLimited(w, le)
	case errors.As(err, &re):
		d.status, d.reason = http.StatusBadRequest, re.msg
		writeJSON(w, d.status, map[string]string{"error": re.code, "error_description": re.msg})
	case errors.Is(err, errMethod):
		d.status, d.reason = http.StatusMethodNotAllowed, "method not allowed"
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, d.status, map[string]string{"error": "invalid_request", "error_description": "use GET or POST"})
	case errors.As(err, &ae):
		if d.user == "" {
			d.user = ae.user
		}
		d.status, d.reason = http.StatusUnauthorized, ae.reason
		w.Header().Set(loginFailedHeader, "failed")
		writeChallenge(w)
	case errors.Is(err, errNoCredentials):
		d.status, d.reason, d.noCredentials = http.StatusUnauthorized, err.Error(), true
		writeChallenge(w)
	case errors.Is(err, store.ErrUnavailable):
		d.status, d.reason = http.StatusServiceUnavailable, err.Error()
		w.Header().Set("Retry-After", "5")
		writeJSON(w, d.status, map[string]string{"error": "temporarily_unavailable", "error_description": "the user store is unavailable; try again shortly"})
	default:
		d.status, d.reason = http.StatusInternalServerError, err.Error()
		writeJSON(w, d.status, map[string]string{"error": "server_error", "error_description": "internal error"})
	}
}

// writeChallenge answers 401, with the same challenge and body whatever
// the reason.
func writeChallenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="regctl"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_grant", "error_description": "authentication failed"})
}

// writeJSON sends v with a Content-Length: a token response (about 8 KB,
// the token twice with its x5c chain) would otherwise go out chunked. The
// body is encoded into a pooled buffer, not a new one per response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := bodyPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bodyPool.Put(buf)
		}
	}()
	_ = json.NewEncoder(buf).Encode(v) // a tokenResponse or a map[string]string: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// scopeList renders scopes for a log line.
func scopeList(sc []acl.Scope) string {
	parts := make([]string, len(sc))
	for i, s := range sc {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

// logDecision writes the one line per request. Its message and keys are a
// stable interface (fail2ban matches "authentication failed" with
// status=401 and "rate limited" with status=429): never a password, token
// or Authorization header. A request without credentials gets its 401
// under a message of its own, which fail2ban does not match: clients send
// one routinely.
func (s *Server) logDecision(ctx context.Context, d *decision) {
	level, msg := slog.LevelInfo, "token issued"
	switch {
	case d.noCredentials:
		msg = "credentials required"
	case d.status == http.StatusUnauthorized:
		level, msg = slog.LevelWarn, "authentication failed"
	case d.status == http.StatusTooManyRequests:
		level, msg = slog.LevelWarn, "rate limited"
	case d.status >= 500:
		level, msg = slog.LevelError, "token request failed"
	case d.status != http.StatusOK:
		level, msg = slog.LevelWarn, "bad token request"
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("user", d.user),
		slog.String("client_ip", d.ip.String()),
		slog.String("grant", string(d.grant)),
		slog.Int("status", d.status),
		slog.String("requested", scopeList(d.requested)),
	}
	if d.status == http.StatusOK {
		attrs = append(attrs, slog.String("granted", scopeList(d.granted)))
	} else {
		attrs = append(attrs, slog.String("reason", d.reason))
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}

// quoteList is names quoted and joined with commas.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
