package benchstack

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// stack is the bench's stack in miniature: a registry (plain HTTP) that
// wants a bearer token, and a TLS front that serves the token at /auth
// and proxies /v2/ to the registry, as nginx does.
type stack struct {
	front, reg *httptest.Server
	ca         string // the front's certificate, PEM
	mu         sync.Mutex
	seen       map[string]int // front: "token" and "v2" requests
}

// frontName is the front's name in references and the realm: one in
// httptest's certificate, not a loopback address (which
// go-containerregistry would also try over plain HTTP).
const frontName = "example.com"

func (s *stack) dialTo() map[string]string {
	return map[string]string{frontName + ":443": s.front.Listener.Addr().String()}
}

const (
	testUser, testPassword = "bench", "pw-secret"
	testToken              = "token-for-bench"
)

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{seen: map[string]int{}}
	regh := registry.New()
	s.reg = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://`+frontName+`/auth",service="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		regh.ServeHTTP(w, r)
	}))
	t.Cleanup(s.reg.Close)
	u, _ := url.Parse(s.reg.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	s.front = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth" {
			s.count("token")
			if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPassword {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"token": testToken})
			return
		}
		s.count("v2")
		proxy.ServeHTTP(w, r)
	}))
	s.front.EnableHTTP2 = true
	s.front.StartTLS()
	t.Cleanup(s.front.Close)
	s.ca = filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.front.Certificate().Raw})
	if err := os.WriteFile(s.ca, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) count(k string) {
	s.mu.Lock()
	s.seen[k]++
	s.mu.Unlock()
}

func (s *stack) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int{}
	for k, v := range s.seen {
		c[k] = v
	}
	s.seen = map[string]int{}
	return c
}

// TestPushPull: through the front and directly, with HTTP/2 and 1.1, a
// push and a pull move every byte, the digests match, tokens come from
// the front, and -direct keeps /v2/ away from the front.
func TestPushPull(t *testing.T) {
	s := newStack(t)
	for _, tc := range []struct {
		name   string
		direct bool
		http1  bool
	}{
		{"front-h2", false, false},
		{"front-http1", false, true},
		{"direct", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{
				Ref: frontName + "/bench/" + tc.name + ":1", CAFile: s.ca, dialTo: s.dialTo(),
				User: testUser, Password: testPassword,
				Layers: 3, LayerSize: 100<<10 + 7, Seed: tc.name, Jobs: 2, HTTP1: tc.http1,
			}
			if tc.direct {
				o.Direct = s.reg.URL
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()

			o.Mode = ModeCheck
			if _, err := Run(ctx, o); err != nil {
				t.Fatalf("check: %v", err)
			}
			s.counts()

			o.Mode = ModePush
			pushed, err := Run(ctx, o)
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			pushSeen := s.counts()
			o.Mode = ModePull
			pulled, err := Run(ctx, o)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			pullSeen := s.counts()

			// 3 tars of one file: header, content padded to 512, 1024 zeros.
			want := int64(3 * (512 + (100<<10+7+511)/512*512 + 1024))
			for _, r := range []*Result{pushed, pulled} {
				if r.Bytes != want {
					t.Errorf("%s moved %d bytes, want %d", r.Mode, r.Bytes, want)
				}
				if r.TokenRequests < 1 || r.TokenSeconds <= 0 || r.TokenShare <= 0 || r.TokenShare > 1 {
					t.Errorf("%s: %d token requests, %.6fs, share %.4f", r.Mode, r.TokenRequests, r.TokenSeconds, r.TokenShare)
				}
				if r.MBps <= 0 {
					t.Errorf("%s: %.1f MB/s", r.Mode, r.MBps)
				}
				wantHost := frontName
				if tc.direct {
					wantHost = strings.TrimPrefix(s.reg.URL, "http://")
				}
				if len(r.V2Hosts) != 1 || r.V2Hosts[wantHost] == 0 {
					t.Errorf("%s: /v2/ requests went to %v, want only %s", r.Mode, r.V2Hosts, wantHost)
				}
				proto := "HTTP/2.0"
				if tc.http1 || tc.direct {
					proto = "HTTP/1.1"
				}
				if r.Protocols[proto] == 0 {
					t.Errorf("%s: protocols %v, want %s", r.Mode, r.Protocols, proto)
				}
			}
			if pulled.Digest != pushed.Digest {
				t.Errorf("pulled %s, pushed %s", pulled.Digest, pushed.Digest)
			}
			for _, seen := range []map[string]int{pushSeen, pullSeen} {
				if seen["token"] < 1 {
					t.Errorf("the front saw no token request: %v", seen)
				}
				if tc.direct && seen["v2"] != 0 {
					t.Errorf("-direct: the front saw %d /v2/ requests", seen["v2"])
				}
			}
		})
	}
}

func TestRandomImage(t *testing.T) {
	digest := func(seed string) string {
		img, err := RandomImage(seed, 2, 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	if a1, a2 := digest("a"), digest("a"); a1 != a2 {
		t.Error("the same seed made different images")
	}
	if digest("a") == digest("b") {
		t.Error("different seeds made the same image")
	}
}

func TestPullFailsOnWrongPassword(t *testing.T) {
	s := newStack(t)
	o := Options{
		Mode: ModePull, Ref: frontName + "/bench/none:1", CAFile: s.ca, dialTo: s.dialTo(),
		User: testUser, Password: "wrong", Jobs: 1,
	}
	if _, err := Run(t.Context(), o); err == nil {
		t.Fatal("pull with a wrong password succeeded")
	}
}

func TestMainFlagsAndStdin(t *testing.T) {
	var got Options
	run := func(_ context.Context, o Options) (*Result, error) {
		got = o
		return &Result{Mode: o.Mode, Ref: o.Ref, Bytes: 42}, nil
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-mode", "push", "-ref", "registry.test/bench/a:1", "-direct", "http://10.0.0.2:5000",
		"-ca", "/ca.pem", "-user", "bench", "-layers", "2", "-layer-size", "4096", "-seed", "x", "-jobs", "3", "-http1"}
	if code := mainRun(args, strings.NewReader(testPassword+"\n"), &stdout, &stderr, run); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := Options{Mode: ModePush, Ref: "registry.test/bench/a:1", Direct: "http://10.0.0.2:5000", CAFile: "/ca.pem",
		User: "bench", Password: testPassword, Layers: 2, LayerSize: 4096, Seed: "x", Jobs: 3, HTTP1: true, Timeout: 10 * time.Minute}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options\n got %+v\nwant %+v", got, want)
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Bytes != 42 {
		t.Errorf("stdout %q: %v", stdout.String(), err)
	}
	if code := Main([]string{"-mode", "nope", "-ref", "registry.test/a:1"}, strings.NewReader(""), &stdout, &stderr); code == 0 {
		t.Error("an unknown mode exited 0")
	}
}

func TestUnion(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	spans := []span{
		{start: at(5), end: at(6)},
		{start: at(1), end: at(3)},
		{start: at(2), end: at(4)},    // overlaps the one before
		{start: at(-1), end: at(0.5)}, // clipped to from
		{start: at(9), end: at(12)},   // clipped to to
	}
	if got, want := union(spans, at(0), at(10)), 5500*time.Millisecond; got != want {
		t.Errorf("union = %s, want %s", got, want)
	}
}
