package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/store/sqlite"
	"github.com/regctl/regctl/internal/token"
)

// handlerFixture is regctl's token handler over a SQLite store holding
// the benchmark's data at a small scale, logging like regctl serve (text,
// level info) to a file, and the floor handler with the same keys.
type handlerFixture struct {
	regctl, floor http.Handler
	refresh       []string // refresh tokens of the warm users
}

const (
	fixtureUsers = 2000
	fixtureRules = 10000
	fixtureWarm  = 100
)

var (
	fixtureOnce sync.Once
	fixture     *handlerFixture
	fixtureErr  error
)

func newHandlerFixture(tb testing.TB) *handlerFixture {
	tb.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = buildHandlerFixture() })
	if fixtureErr != nil {
		tb.Fatal(fixtureErr)
	}
	return fixture
}

func buildHandlerFixture() (*handlerFixture, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "regctl-bench-test-")
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	now := time.Now()
	if err := keys.Generate(filepath.Join(dir, "keys"), keys.ES256, now); err != nil {
		return nil, err
	}
	ks, err := keys.Load(filepath.Join(dir, "keys"), now)
	if err != nil {
		return nil, err
	}
	hashes, err := Hashes(bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "regctl.db"))
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { st.Close(ctx) })
	if err := Populate(ctx, st, fixtureUsers, fixtureRules, hashes, nil); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { logFile.Close() })
	cfg := config.TokenServerDefaults()
	cfg.Issuer, cfg.Services = Issuer, []string{Service}
	srv, err := token.New(cfg, st, ks, slog.New(slog.NewTextHandler(logFile, nil)), nil)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	cleanups = append(cleanups, cancel)
	srv.Start(sctx)
	if err := srv.Ready(); err != nil {
		return nil, err
	}
	floor, err := NewFloor(ks, time.Now)
	if err != nil {
		return nil, err
	}
	f := &handlerFixture{regctl: srv.Handler(), floor: floor}
	for i := range fixtureWarm {
		rec := serve(f.regctl, warmRequest(i, 0, url.Values{"offline_token": {"true"}}))
		if rec.Code != http.StatusOK {
			return nil, &statusError{rec.Code, rec.Body.String()}
		}
		var rep tokenReply
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			return nil, err
		}
		f.refresh = append(f.refresh, rep.RefreshToken)
	}
	return f, nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return http.StatusText(e.code) + ": " + e.body }

var cleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

func warmRequest(i, req int, extra url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodGet, tokenPath(i, req, fixtureRules, extra), nil)
	r.Header.Set("Authorization", basicAuth(i))
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

func refreshRequest(tok string, i, req int) *http.Request {
	body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "service": {Service},
		"scope": {Scope(i, req, fixtureRules)}, "client_id": {"regctl-bench"}}
	r := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(body.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// BenchmarkHandler compares regctl's token handler on the SQLite store
// (10,000 rules, credentials cached: the warm path, and refresh-token
// grants) with the floor handler: one request per op, no network.
func BenchmarkHandler(b *testing.B) {
	f := newHandlerFixture(b)
	run := func(b *testing.B, h http.Handler, next func(n int) *http.Request) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if rec := serve(h, next(n)); rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			n++
		}
	}
	b.Run("floor", func(b *testing.B) {
		run(b, f.floor, func(n int) *http.Request { return warmRequest(n%fixtureWarm, n/fixtureWarm, nil) })
	})
	b.Run("warm", func(b *testing.B) {
		run(b, f.regctl, func(n int) *http.Request { return warmRequest(n%fixtureWarm, n/fixtureWarm, nil) })
	})
	b.Run("refresh", func(b *testing.B) {
		run(b, f.regctl, func(n int) *http.Request {
			i := n % fixtureWarm
			return refreshRequest(f.refresh[i], i, n/fixtureWarm)
		})
	})
}
