package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/testenv"
)

// memStore is an in-memory token.Store for protocol tests; the real
// backends are covered by the store conformance suite and the e2e tests.
type memStore struct {
	mu    sync.Mutex
	users map[string]store.User
	rules []acl.Rule
	down  bool
	gets  int
}

func (m *memStore) GetUser(_ context.Context, name string) (*store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	if m.down {
		return nil, store.ErrUnavailable
	}
	u, ok := m.users[name]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &u, nil
}

func (m *memStore) ListRules(context.Context) ([]acl.Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, store.ErrUnavailable
	}
	return append([]acl.Rule(nil), m.rules...), nil
}

func (m *memStore) setUser(u store.User) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.Username] = u
}

func (m *memStore) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

func ptr[T any](v T) *T { return &v }

var (
	keysOnce sync.Once
	keysDir  string
	keysErr  error
)

// testKeys generates one ES256 key set per test binary.
func testKeys(t testing.TB) *keys.Set {
	t.Helper()
	keysOnce.Do(func() {
		dir, err := tempDir()
		if err != nil {
			keysErr = err
			return
		}
		keysDir = dir + "/keys"
		keysErr = keys.Generate(keysDir, keys.ES256, time.Now())
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	ks, err := keys.Load(keysDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func hash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// fixture is a running token server over a memStore with the classic
// label rules and users waldi (full-access), reader (read-only-access) and
// bob (a grant).
type fixture struct {
	t     testing.TB
	st    *memStore
	srv   *Server
	h     http.Handler
	clock *testenv.Clock
}

const testService = "registry.test"

func newFixture(t testing.TB, opts ...func(*config.TokenServer)) *fixture {
	t.Helper()
	st := &memStore{users: map[string]store.User{}}
	st.rules = []acl.Rule{
		{Seq: 20, Match: acl.Match{Name: ptr("${labels:read-only-access}")}, Actions: []string{"pull"}},
		{Seq: 10, Match: acl.Match{Name: ptr("${labels:full-access}")}, Actions: []string{"*"}},
	}
	st.setUser(store.User{Username: "waldi", PasswordHash: hash(t, "waldi-secret"), Labels: map[string][]string{"full-access": {"test/*", "socke*"}}})
	st.setUser(store.User{Username: "reader", PasswordHash: hash(t, "reader-secret"), Labels: map[string][]string{"read-only-access": {"prod/*"}}})
	st.setUser(store.User{Username: "bob", PasswordHash: hash(t, "bob-secret"), Grants: []acl.Grant{{Pattern: "team/*", Actions: []string{"pull", "push"}}}})
	cfg := config.TokenServerDefaults()
	cfg.Issuer, cfg.Services = "regctl-test", []string{testService}
	cfg.ReloadInterval = time.Second
	cfg.BcryptCost = bcrypt.MinCost // the users' cost: fast under -race
	for _, o := range opts {
		o(&cfg)
	}
	clk := testenv.NewClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	srv, err := New(cfg, st, testKeys(t), slog.New(slog.NewTextHandler(io.Discard, nil)), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.rules.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, srv: srv, h: srv.Handler(), clock: clk}
}

// get performs a GET token request with Basic auth (user "" = none).
func (f *fixture) get(user, pass string, params url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/auth/token?"+params.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) post(form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// decode parses a successful response and the token's header and claims
// (without verifying: verification is tested separately).
func decode(t testing.TB, rec *httptest.ResponseRecorder) (tokenResponse, map[string]any, Claims) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	var resp tokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(resp.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var hdr map[string]any
	var c Claims
	for i, v := range []any{&hdr, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return resp, hdr, c
}

func scopes(q ...string) url.Values {
	return url.Values{"service": {testService}, "scope": q}
}
