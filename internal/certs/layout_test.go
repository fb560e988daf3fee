package certs_test

import (
	"slices"
	"testing"

	"github.com/regctl/regctl/internal/certs"
)

func TestLayout(t *testing.T) {
	l := certs.Layout{Root: "/opt/regctl"}
	for got, want := range map[string]string{
		l.Fullchain("r.example"): "/opt/regctl/certs/live/r.example/fullchain.pem",
		l.Privkey("r.example"):   "/opt/regctl/certs/live/r.example/privkey.pem",
		l.DHParams():             "/opt/regctl/certs/dhparams.pem",
		l.Webroot():              "/opt/regctl/acme-webroot",
		l.LockFile():             "/opt/regctl/certs/.lock",
		l.ComposeFile():          "/opt/regctl/compose.yaml",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	for _, tt := range []struct{ dir, email, want string }{
		{certs.LetsEncryptProduction, "ops@example.com", "/opt/regctl/certs/accounts/acme-v02.api.letsencrypt.org/ops@example.com"},
		{"https://127.0.0.1:14000/dir", "", "/opt/regctl/certs/accounts/127.0.0.1_14000/default"},
	} {
		got, err := l.AccountDir(tt.dir, tt.email)
		if err != nil || got != tt.want {
			t.Errorf("AccountDir(%q, %q) = %q, %v; want %q", tt.dir, tt.email, got, err, tt.want)
		}
	}
	for _, bad := range [][2]string{{"not a url", ""}, {certs.LetsEncryptProduction, "../x"}, {certs.LetsEncryptProduction, "a/b"}} {
		if _, err := l.AccountDir(bad[0], bad[1]); err == nil {
			t.Errorf("AccountDir(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestNames(t *testing.T) {
	got, err := certs.NormalizeNames([]string{"Registry.Example.COM.", "*.example.com", "registry.example.com", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"registry.example.com", "*.example.com", "127.0.0.1", "::1"}; !slices.Equal(got, want) {
		t.Errorf("certs.NormalizeNames = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "a..b", "-a.example", "a b", "a/b", "*.", "ex*ample.com", "ünï.example"} {
		if _, err := certs.NormalizeNames([]string{bad}); err == nil {
			t.Errorf("certs.NormalizeNames(%q) succeeded", bad)
		}
	}
	if _, err := certs.NormalizeNames(nil); err == nil {
		t.Error("no names accepted")
	}
	for in, want := range map[string]string{"registry.example.com": "registry.example.com", "*.example.com": "_wildcard_.example.com", "127.0.0.1": "127.0.0.1", "::1": "__1"} {
		if got, err := certs.CertName([]string{in}); err != nil || got != want {
			t.Errorf("certs.CertName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestStagingDetection(t *testing.T) {
	for dir, want := range map[string]bool{
		certs.LetsEncryptStaging:         true,
		certs.LetsEncryptProduction:      false,
		"https://acme.staging.example/d": true,
		"https://127.0.0.1:14000/dir":    false,
		"https://ca.example/staging/dir": false, // only the host counts
	} {
		if got := certs.IsStagingDirectory(dir); got != want {
			t.Errorf("certs.IsStagingDirectory(%q) = %v", dir, got)
		}
	}
	for p, ok := range map[string]bool{"": true, "classic": true, "shortlived": true, "tlsserver": true, "Bad Profile": false, "a/b": false} {
		if err := certs.CheckProfile(p); (err == nil) != ok {
			t.Errorf("certs.CheckProfile(%q) = %v", p, err)
		}
	}
}
