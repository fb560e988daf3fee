package token

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/acl"
)

func TestParseBasicAuth(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, header string
		user, pass   string
		ok, wantErr  bool
	}{
		{name: "absent"},
		{name: "basic", header: "Basic " + b64("waldi:pw"), user: "waldi", pass: "pw", ok: true},
		{name: "case-insensitive scheme", header: "basic " + b64("waldi:pw"), user: "waldi", pass: "pw", ok: true},
		{name: "colon in password", header: "Basic " + b64("waldi:a:b"), user: "waldi", pass: "a:b", ok: true},
		{name: "empty password", header: "Basic " + b64("waldi:"), user: "waldi", pass: "", ok: true},
		{name: "bearer", header: "Bearer xyz", wantErr: true},
		{name: "not base64", header: "Basic !!!", wantErr: true},
		{name: "no colon", header: "Basic " + b64("waldi"), wantErr: true},
		{name: "empty user", header: "Basic " + b64(":pw"), wantErr: true},
		{name: "too long", header: "Basic " + strings.Repeat("A", 9000), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p, ok, err := parseBasicAuth(tt.header)
			if (err != nil) != tt.wantErr || ok != tt.ok || u != tt.user || p != tt.pass {
				t.Errorf("parseBasicAuth(%q) = %q, %q, %v, %v", tt.header, u, p, ok, err)
			}
		})
	}
}

func FuzzParseBasicAuth(f *testing.F) {
	for _, s := range []string{"", "Basic d2FsZGk6cHc=", "Bearer x", "Basic ", "basic Og==", "Basic !!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		u, _, ok, err := parseBasicAuth(h)
		if ok && (err != nil || u == "") {
			t.Fatalf("ok with err=%v user=%q", err, u)
		}
	})
}

// FuzzParseRequest drives whole GET and POST requests through the parser:
// it must never panic, and a successful parse must be internally sane.
func FuzzParseRequest(f *testing.F) {
	f.Add(true, "service=registry.test&scope=repository:a/b:pull,push", "")
	f.Add(false, "", "grant_type=password&username=u&password=p&scope=repository:x:pull+repository:y:push")
	f.Add(false, "", "grant_type=refresh_token&refresh_token=regctl1.x.y&access_type=offline")
	f.Add(true, "scope=registry:catalog:*&offline_token=true", "Basic d2FsZGk6cHc=")
	f.Fuzz(func(t *testing.T, get bool, query, body string) {
		var r *http.Request
		if get {
			r = httptest.NewRequest(http.MethodGet, "/auth", nil)
			r.URL.RawQuery = query
			r.Header.Set("Authorization", body)
		} else {
			r = httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req, err := parseRequest(httptest.NewRecorder(), r)
		if err != nil {
			return
		}
		switch req.grant {
		case grantBasic, grantPassword:
			if req.username == "" {
				t.Fatal("password grant without username")
			}
		case grantRefresh:
			if req.refreshToken == "" {
				t.Fatal("refresh grant without token")
			}
		case grantAnonymous:
		default:
			t.Fatalf("unknown grant %q", req.grant)
		}
		for _, s := range req.scopes {
			if len(s.Actions) == 0 || s.Type == "" {
				t.Fatalf("bad scope %+v", s)
			}
		}
	})
}

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name, remote, xff, xri, want string
	}{
		{name: "direct", remote: "203.0.113.5:1234", want: "203.0.113.5"},
		{name: "untrusted peer ignores XFF", remote: "203.0.113.5:1234", xff: "198.51.100.1", want: "203.0.113.5"},
		{name: "trusted peer", remote: "10.1.2.3:1234", xff: "198.51.100.1", want: "198.51.100.1"},
		{name: "rightmost untrusted", remote: "10.1.2.3:1234", xff: "1.1.1.1, 198.51.100.1, 10.9.9.9", want: "198.51.100.1"},
		{name: "spoofed leftmost ignored", remote: "10.1.2.3:1234", xff: "6.6.6.6, 198.51.100.1", want: "198.51.100.1"},
		{name: "malformed hop", remote: "10.1.2.3:1234", xff: "junk", want: "10.1.2.3"},
		{name: "x-real-ip", remote: "[::1]:80", xri: "198.51.100.7", want: "198.51.100.7"},
		{name: "mapped v4", remote: "[::ffff:203.0.113.9]:1", want: "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/auth", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if tt.xri != "" {
				r.Header.Set("X-Real-IP", tt.xri)
			}
			if got := clientIP(r, proxies).String(); got != tt.want {
				t.Errorf("clientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

// BenchmarkTokenWarm is the hot path: cached user and credential, one
// scope, ES256 signature, JSON response.
func BenchmarkTokenWarm(b *testing.B) {
	f := newFixture(b)
	q := scopes("repository:test/app:pull,push").Encode()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("waldi:waldi-secret"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodGet, "/auth/token?"+q, nil)
			r.Header.Set("Authorization", auth)
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, r)
			if rec.Code != 200 {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}

// BenchmarkMint is the floor: one ES256 token with fixed claims.
func BenchmarkMint(b *testing.B) {
	f := newFixture(b)
	now := f.clock.Now()
	access := []acl.Scope{{Type: "repository", Name: "test/app", Actions: []string{"pull", "push"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.srv.minter.Mint("waldi", testService, access, now); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = url.Values{}
