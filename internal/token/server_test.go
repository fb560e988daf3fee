package token

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/store"
)

func TestTokenHeaderAndClaims(t *testing.T) {
	f := newFixture(t)
	rec := f.get("waldi", "waldi-secret", scopes("repository:test/app:pull,push"))
	resp, hdr, c := decode(t, rec)

	if resp.Token != resp.AccessToken {
		t.Error("token and access_token differ")
	}
	if resp.ExpiresIn != 300 {
		t.Errorf("expires_in = %d, want 300", resp.ExpiresIn)
	}
	if resp.IssuedAt != "2026-11-29T12:00:00Z" {
		t.Errorf("issued_at = %q", resp.IssuedAt)
	}
	if resp.RefreshToken != "" {
		t.Error("refresh_token without offline_token")
	}
	ks := testKeys(t)
	if hdr["alg"] != "ES256" || hdr["typ"] != "JWT" || hdr["kid"] != ks.KeyID {
		t.Errorf("header = %v", hdr)
	}
	x5c, _ := hdr["x5c"].([]any)
	if len(x5c) != 2 {
		t.Fatalf("x5c has %d certs, want leaf and CA", len(x5c))
	}
	for i, c := range x5c {
		der, err := base64.StdEncoding.DecodeString(c.(string))
		if err != nil {
			t.Fatalf("x5c[%d] not standard base64: %v", i, err)
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			t.Fatalf("x5c[%d]: %v", i, err)
		}
	}
	now := f.clock.Now().Unix()
	want := Claims{
		Issuer: "regctl-test", Subject: "waldi", Audience: testService,
		Expiry: now + 300, NotBefore: now - 10, IssuedAt: now, ID: c.ID,
		Access: []acl.Scope{{Type: "repository", Name: "test/app", Actions: []string{"pull", "push"}}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("claims = %+v\nwant     %+v", c, want)
	}
	if len(c.ID) != 32 {
		t.Errorf("jti %q is not 128 random bits in hex", c.ID)
	}
	// aud must be a JSON string, not an array (distribution 2.8).
	raw := strings.Split(resp.Token, ".")[1]
	b, _ := base64.RawURLEncoding.DecodeString(raw)
	if !strings.Contains(string(b), `"aud":"registry.test"`) {
		t.Errorf("aud is not a single string: %s", b)
	}
	// The signature verifies with the leaf certificate's key.
	jws, err := jose.ParseSignedCompact(resp.Token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(ks.Chain[0].PublicKey); err != nil {
		t.Fatalf("signature: %v", err)
	}
	// A second token has a different jti.
	_, _, c2 := decode(t, f.get("waldi", "waldi-secret", scopes("repository:test/app:pull")))
	if c2.ID == c.ID {
		t.Error("jti repeated")
	}
}

// TestKeyFormatJWKS: with key format jwks the header names the key by kid
// alone, no x5c, and the JWKS the server publishes (the registry's
// auth.token.jwks) resolves that kid to the key that verifies the token.
func TestKeyFormatJWKS(t *testing.T) {
	f := newFixture(t, func(c *config.TokenServer) { c.KeyFormat = config.KeyFormatJWKS })
	resp, hdr, _ := decode(t, f.get("waldi", "waldi-secret", scopes("repository:test/app:pull")))
	if _, ok := hdr["x5c"]; ok {
		t.Errorf("header has x5c: %v", hdr)
	}
	kid, _ := hdr["kid"].(string)
	if kid == "" || hdr["alg"] != "ES256" {
		t.Fatalf("header = %v", hdr)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/auth/jwks.json", nil))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("the JWKS has %d keys with kid %q: %s", len(keys), kid, rec.Body)
	}
	jws, err := jose.ParseSignedCompact(resp.Token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(keys[0].Key); err != nil {
		t.Fatalf("the JWKS key does not verify the token: %v", err)
	}

	bad := config.TokenServerDefaults()
	bad.Issuer, bad.Services, bad.KeyFormat = "i", []string{"s"}, "kid"
	if _, err := New(bad, f.st, testKeys(t), nil, nil); err == nil {
		t.Error("New accepted key format \"kid\"")
	}
}

// TestSeveralServices: one token server for several registries. A
// request names its service, which must be one of the server's; rules with
// a service condition are decided against it; the token's aud is it; a
// request that names none gets the first.
func TestSeveralServices(t *testing.T) {
	const ci = "ci.registry.test"
	f := newFixture(t, func(c *config.TokenServer) { c.Services = []string{testService, ci} })
	// bob may push team/* on any service (his grant); on the CI registry
	// only, a rule lets everyone authenticated pull cache/*.
	f.st.rules = append(f.st.rules, acl.Rule{Seq: 5, Match: acl.Match{Account: ptr("/.+/"), Service: ptr(ci), Name: ptr("cache/*")}, Actions: []string{"pull"}})
	if err := f.srv.rules.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		service, scope string
		wantAud        string
		want           []string
	}{
		{testService, "repository:team/app:pull,push", testService, []string{"pull", "push"}},
		{ci, "repository:team/app:pull,push", ci, []string{"pull", "push"}},
		{ci, "repository:cache/base:pull", ci, []string{"pull"}},
		{testService, "repository:cache/base:pull", testService, nil},
		{"", "repository:cache/base:pull", testService, nil},
	} {
		q := url.Values{"scope": {tt.scope}}
		if tt.service != "" {
			q.Set("service", tt.service)
		}
		_, _, c := decode(t, f.get("bob", "bob-secret", q))
		var got []string
		if len(c.Access) > 0 {
			got = c.Access[0].Actions
		}
		if c.Audience != tt.wantAud || !slices.Equal(got, tt.want) {
			t.Errorf("service %q, %s: aud %q, actions %v; want %q, %v", tt.service, tt.scope, c.Audience, got, tt.wantAud, tt.want)
		}
	}
	rec := f.get("bob", "bob-secret", url.Values{"service": {"other.test"}, "scope": {"repository:team/app:pull"}})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `unknown service \"other.test\"`) {
		t.Errorf("unknown service: %d %s", rec.Code, rec.Body)
	}
	// Only after authentication: a wrong password or no credentials get
	// their 401, and the list of services is not told.
	for _, user := range []string{"bob", ""} {
		rec := f.get(user, "wrong", url.Values{"service": {"other.test"}, "scope": {"repository:team/app:pull"}})
		if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), testService) {
			t.Errorf("unknown service, user %q with a wrong password: %d %s", user, rec.Code, rec.Body)
		}
	}
}

func TestTokenDecisions(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string
		scope      []string
		wantStatus int
		wantAccess []acl.Scope
	}{
		{name: "label full access", user: "waldi", pass: "waldi-secret", scope: []string{"repository:test/app:pull,push"}, wantStatus: 200,
			wantAccess: []acl.Scope{{Type: "repository", Name: "test/app", Actions: []string{"pull", "push"}}}},
		{name: "second label value", user: "waldi", pass: "waldi-secret", scope: []string{"repository:socke1:push"}, wantStatus: 200,
			wantAccess: []acl.Scope{{Type: "repository", Name: "socke1", Actions: []string{"push"}}}},
		{name: "unauthorized repository is 200 with no access", user: "waldi", pass: "waldi-secret", scope: []string{"repository:prod/app:push"}, wantStatus: 200,
			wantAccess: []acl.Scope{}},
		{name: "read-only", user: "reader", pass: "reader-secret", scope: []string{"repository:prod/app:pull,push"}, wantStatus: 200,
			wantAccess: []acl.Scope{{Type: "repository", Name: "prod/app", Actions: []string{"pull"}}}},
		{name: "grant", user: "bob", pass: "bob-secret", scope: []string{"repository:team/x:push repository:other/x:pull"}, wantStatus: 200,
			wantAccess: []acl.Scope{{Type: "repository", Name: "team/x", Actions: []string{"push"}}}},
		{name: "scopes merged", user: "waldi", pass: "waldi-secret", scope: []string{"repository:test/app:pull", "repository:test/app:push"}, wantStatus: 200,
			wantAccess: []acl.Scope{{Type: "repository", Name: "test/app", Actions: []string{"pull", "push"}}}},
		{name: "login without scope", user: "waldi", pass: "waldi-secret", wantStatus: 200, wantAccess: []acl.Scope{}},
		{name: "wrong password", user: "waldi", pass: "nope", scope: []string{"repository:test/app:pull"}, wantStatus: 401},
		{name: "unknown user", user: "mallory", pass: "x", scope: []string{"repository:test/app:pull"}, wantStatus: 401},
		{name: "anonymous refused", scope: []string{"repository:test/app:pull"}, wantStatus: 401},
		{name: "malformed scope", user: "waldi", pass: "waldi-secret", scope: []string{"repository:test/app"}, wantStatus: 400},
		{name: "unknown action", user: "waldi", pass: "waldi-secret", scope: []string{"repository:test/app:steal"}, wantStatus: 400},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.get(tt.user, tt.pass, scopes(tt.scope...))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			switch rec.Code {
			case 200:
				_, _, c := decode(t, rec)
				if !reflect.DeepEqual(c.Access, tt.wantAccess) {
					t.Errorf("access = %+v, want %+v", c.Access, tt.wantAccess)
				}
			case 401:
				if got := rec.Header().Get("WWW-Authenticate"); got != `Basic realm="regctl"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			case 400:
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != "invalid_request" || body["error_description"] == "" {
					t.Errorf("400 body = %s", rec.Body)
				}
			}
		})
	}
}

func TestTokenBadRequests(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		req      func() *http.Request
		status   int
		errCode  string
		contains string
	}{
		{name: "unknown grant type", status: 400, errCode: "unsupported_grant_type", contains: "client_credentials",
			req: func() *http.Request { return form(url.Values{"grant_type": {"client_credentials"}}) }},
		{name: "missing grant type", status: 400, errCode: "invalid_request", contains: "grant_type",
			req: func() *http.Request { return form(url.Values{"username": {"waldi"}}) }},
		{name: "refresh without token", status: 400, errCode: "invalid_request", contains: "refresh_token",
			req: func() *http.Request { return form(url.Values{"grant_type": {"refresh_token"}}) }},
		{name: "wrong content type", status: 400, errCode: "invalid_request", contains: "x-www-form-urlencoded",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(`{}`))
				r.Header.Set("Content-Type", "application/json")
				return r
			}},
		{name: "body too large", status: 400, errCode: "invalid_request", contains: "larger than",
			req: func() *http.Request {
				return form(url.Values{"grant_type": {"password"}, "x": {strings.Repeat("a", 70<<10)}})
			}},
		{name: "other service", status: 400, errCode: "invalid_request", contains: "unknown service",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/auth?service=other", nil)
				r.SetBasicAuth("waldi", "waldi-secret")
				return r
			}},
		{name: "account mismatch", status: 400, errCode: "invalid_request", contains: "account",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/auth?account=reader", nil)
				r.SetBasicAuth("waldi", "waldi-secret")
				return r
			}},
		{name: "bearer scheme", status: 400, errCode: "invalid_request", contains: "Basic",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/auth", nil)
				r.Header.Set("Authorization", "Bearer abc")
				return r
			}},
		{name: "repeated service", status: 400, errCode: "invalid_request", contains: "service",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/auth?service=a&service=b", nil)
				r.SetBasicAuth("waldi", "waldi-secret")
				return r
			}},
		{name: "PUT", status: 405, errCode: "invalid_request",
			req: func() *http.Request { return httptest.NewRequest(http.MethodPut, "/auth", nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, tt.req())
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body["error"] != tt.errCode || !strings.Contains(body["error_description"], tt.contains) {
				t.Errorf("body = %v, want error %q mentioning %q", body, tt.errCode, tt.contains)
			}
		})
	}
}

func form(v url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestPasswordGrant(t *testing.T) {
	f := newFixture(t)
	rec := f.post(url.Values{"grant_type": {"password"}, "username": {"waldi"}, "password": {"waldi-secret"},
		"service": {testService}, "client_id": {"containerd"}, "scope": {"repository:test/app:pull repository:socke1:push"}})
	_, _, c := decode(t, rec)
	want := []acl.Scope{{Type: "repository", Name: "test/app", Actions: []string{"pull"}}, {Type: "repository", Name: "socke1", Actions: []string{"push"}}}
	if !reflect.DeepEqual(c.Access, want) {
		t.Errorf("access = %+v", c.Access)
	}
	rec = f.post(url.Values{"grant_type": {"password"}, "username": {"waldi"}, "password": {"bad"}, "service": {testService}})
	if rec.Code != 401 {
		t.Errorf("bad password: status %d", rec.Code)
	}
}

// The docker login flow: GET offline_token=true returns a refresh token,
// which later POSTs exchange for access tokens, without rotation, until the
// user changes password, is disabled, expires or is deleted.
func TestRefreshTokens(t *testing.T) {
	login := func(f *fixture) string {
		rec := f.get("waldi", "waldi-secret", url.Values{"service": {testService}, "offline_token": {"true"}, "client_id": {"docker"}})
		resp, _, _ := decode(t, rec)
		if !strings.HasPrefix(resp.RefreshToken, refreshPrefix) {
			t.Fatalf("no refresh token: %+v", resp)
		}
		return resp.RefreshToken
	}
	refresh := func(f *fixture, tok string) *httptest.ResponseRecorder {
		return f.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "service": {testService},
			"client_id": {"docker"}, "scope": {"repository:test/app:push"}})
	}
	mutate := map[string]func(f *fixture){
		"password change": func(f *fixture) {
			u, _ := f.st.GetUser(context.Background(), "waldi")
			u.PasswordHash = hash(t, "new-secret")
			f.st.setUser(*u)
		},
		"disabled": func(f *fixture) {
			u, _ := f.st.GetUser(context.Background(), "waldi")
			u.Disabled = true
			f.st.setUser(*u)
		},
		"expired": func(f *fixture) {
			u, _ := f.st.GetUser(context.Background(), "waldi")
			u.ExpiresAt = ptr(f.clock.Now().Add(time.Minute))
			f.st.setUser(*u)
			f.clock.Advance(time.Minute)
		},
		"deleted": func(f *fixture) {
			f.st.mu.Lock()
			delete(f.st.users, "waldi")
			f.st.mu.Unlock()
		},
	}
	t.Run("works and is not rotated", func(t *testing.T) {
		f := newFixture(t)
		tok := login(f)
		for range 2 {
			resp, _, c := decode(t, refresh(f, tok))
			if resp.RefreshToken != "" {
				t.Error("refresh token rotated on use")
			}
			if c.Subject != "waldi" || len(c.Access) != 1 || c.Access[0].Actions[0] != "push" {
				t.Errorf("claims = %+v", c)
			}
		}
	})
	t.Run("tampered", func(t *testing.T) {
		f := newFixture(t)
		tok := login(f)
		bad := tok[:len(tok)-2] + "AA"
		if rec := refresh(f, bad); rec.Code != 401 {
			t.Errorf("tampered token: status %d", rec.Code)
		}
	})
	t.Run("expires", func(t *testing.T) {
		f := newFixture(t)
		tok := login(f)
		f.clock.Advance(config.TokenServerDefaults().RefreshLifetime)
		if err := f.srv.rules.reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rec := refresh(f, tok); rec.Code != 401 {
			t.Errorf("expired refresh token: status %d", rec.Code)
		}
	})
	for name, m := range mutate {
		t.Run("revoked when "+name, func(t *testing.T) {
			f := newFixture(t)
			tok := login(f)
			if rec := refresh(f, tok); rec.Code != 200 {
				t.Fatalf("before: %d", rec.Code)
			}
			m(f)
			f.clock.Advance(2 * time.Second) // past the user cache (reload interval 1s)
			if err := f.srv.rules.reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			if rec := refresh(f, tok); rec.Code != 401 {
				t.Errorf("after %s: status %d, want 401", name, rec.Code)
			}
		})
	}
}

func TestAccountStatus(t *testing.T) {
	f := newFixture(t)
	u, _ := f.st.GetUser(context.Background(), "reader")
	u.ExpiresAt = ptr(f.clock.Now())
	f.st.setUser(*u)
	if rec := f.get("reader", "reader-secret", scopes("repository:prod/app:pull")); rec.Code != 401 {
		t.Errorf("expired exactly now: status %d, want 401", rec.Code)
	}
}

// Fail closed: once the store is down, token requests get 503 (not a
// decision from stale data) and the server recovers by itself.
func TestStoreOutage(t *testing.T) {
	f := newFixture(t)
	if rec := f.get("waldi", "waldi-secret", scopes("repository:test/app:pull")); rec.Code != 200 {
		t.Fatalf("before: %d", rec.Code)
	}
	f.st.setDown(true)
	_ = f.srv.rules.reload(t.Context())
	rec := f.get("waldi", "waldi-secret", scopes("repository:test/app:pull"))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("store down: status %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	ready := httptest.NewRecorder()
	f.h.ServeHTTP(ready, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if ready.Code != 503 {
		t.Errorf("readyz while down: %d", ready.Code)
	}
	f.st.setDown(false)
	_ = f.srv.rules.reload(t.Context())
	if rec := f.get("waldi", "waldi-secret", scopes("repository:test/app:pull")); rec.Code != 200 {
		t.Errorf("after recovery: %d", rec.Code)
	}
	// A reload that never comes back also fails closed once the policy is
	// older than the bound.
	f.clock.Advance(time.Minute)
	if rec := f.get("waldi", "waldi-secret", scopes("repository:test/app:pull")); rec.Code != 503 {
		t.Errorf("stale policy: %d, want 503", rec.Code)
	}
}

// The credential cache spares bcrypt for repeated correct logins of an
// active user, never answers a wrong password or an inactive user
// without bcrypt, and notices a password change.
func TestCredentialCache(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	auth := func(user, pw string) (bool, error) {
		t.Helper()
		_, cached, err := f.srv.auth.authenticate(ctx, netip.Prefix{}, user, pw, f.clock.Now())
		return cached, err
	}
	step := func(name, user, pw string, wantCached bool, wantErr error, wantBcrypts uint64) {
		t.Helper()
		before := bcrypts(f)
		cached, err := auth(user, pw)
		if cached != wantCached || err != wantErr { //nolint:errorlint // the test pins the exact value auth returns
			t.Fatalf("%s: cached=%v err=%v, want cached=%v err=%v", name, cached, err, wantCached, wantErr)
		}
		if got := bcrypts(f) - before; got != wantBcrypts {
			t.Fatalf("%s: %d bcrypt comparisons, want %d", name, got, wantBcrypts)
		}
	}
	step("first", "waldi", "waldi-secret", false, nil, 1)
	step("second", "waldi", "waldi-secret", true, nil, 0)
	step("wrong vs cached", "waldi", "wrong", false, errBadCredentials, 1)
	step("unknown", "nobody", "wrong", false, errUnknownUser, 1)

	u, _ := f.st.GetUser(ctx, "waldi")
	u.Disabled = true
	f.st.setUser(*u)
	f.srv.auth.cache.Purge() // as after the reload interval
	step("disabled, right password", "waldi", "waldi-secret", false, nil, 1)

	u.Disabled = false
	u.PasswordHash = hash(t, "new-secret")
	f.st.setUser(*u)
	f.srv.auth.cache.Purge()
	step("old password after change", "waldi", "waldi-secret", false, errBadCredentials, 1)
	step("new password", "waldi", "new-secret", false, nil, 1)
}

func TestJWKSAndHealth(t *testing.T) {
	f := newFixture(t)
	for path, want := range map[string]int{"/livez": 200, "/readyz": 200, "/auth/jwks.json": 200} {
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d", path, rec.Code)
		}
		if path == "/auth/jwks.json" {
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0].KeyID != testKeys(t).KeyID {
				t.Errorf("jwks = %s (%v)", rec.Body, err)
			}
		}
	}
}

var _ Store = (*memStore)(nil)
var _ = store.ErrNotFound
