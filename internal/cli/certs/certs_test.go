package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/certs/certstest"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
)

// certsEnv runs `regctl certs` commands in-process with a settable clock,
// and, for obtain and renew, a given Issuer and Reloader instead of lego
// and docker compose.
type certsEnv struct {
	t           *testing.T
	f           *cmdutil.Factory
	ios         *cmdutil.IOStreams
	out, errOut *bytes.Buffer
	root        string

	mu     sync.Mutex
	clock  time.Time
	sleeps []time.Duration

	issuer     certs.Issuer
	reloader   certs.Reloader
	transcript strings.Builder
}

var certsNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func newCertsEnv(t *testing.T) *certsEnv {
	t.Helper()
	ios, _, out, errOut := cmdutil.Test()
	e := &certsEnv{t: t, ios: ios, out: out, errOut: errOut, root: t.TempDir(), clock: certsNow}
	e.f = &cmdutil.Factory{IO: ios, Config: cmdutil.NewViper(), Now: e.now, Location: time.UTC}
	e.f.Logger = func() *slog.Logger { return cmdutil.NewLogger(e.f) }
	return e
}

func (e *certsEnv) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

func (e *certsEnv) setNow(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clock = t
}

func (e *certsEnv) sleep(_ context.Context, d time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sleeps = append(e.sleeps, d)
	return nil
}

// command builds `regctl` with a `certs` whose obtain and renew use the
// env's issuer, reloader and sleep.
func (e *certsEnv) command() *cobra.Command {
	f := e.f
	certsCmd := &cobra.Command{Use: "certs"}
	certsCmd.AddCommand(
		NewCmdObtain(f, func(ctx context.Context, o *ObtainOptions) error {
			o.Issuer, o.Reloader = e.issuer, e.reloader
			return obtainRun(ctx, o)
		}),
		NewCmdRenew(f, func(ctx context.Context, o *RenewOptions) error {
			o.Issuer, o.Reloader, o.Sleep = e.issuer, e.reloader, e.sleep
			return renewRun(ctx, o)
		}),
		NewCmdStatus(f, nil),
		NewCmdDHParams(f, nil),
	)
	return cmdtest.Root(f, certsCmd)
}

// run executes regctl args and returns the exit code, mapping errors as
// Execute does.
func (e *certsEnv) run(args ...string) int {
	e.t.Helper()
	e.out.Reset()
	e.errOut.Reset()
	root := e.command()
	root.SetArgs(args)
	root.SetOut(e.out)
	root.SetErr(e.errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, err := root.ExecuteContextC(ctx)
	var fe *cmdutil.FlagError
	switch {
	case err == nil:
		return cmdutil.ExitOK
	case errors.Is(err, cmdutil.ErrSilent):
		return cmdutil.ExitError
	case errors.As(err, &fe):
		fmt.Fprintf(e.errOut, "error: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return cmdutil.ExitUsage
	}
	fmt.Fprintf(e.errOut, "error: %v\n", err)
	return cmdutil.ExitError
}

// must runs args and fails the test unless the exit code is want.
func (e *certsEnv) must(want int, args ...string) {
	e.t.Helper()
	if got := e.run(args...); got != want {
		e.t.Fatalf("regctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, want, e.out, e.errOut)
	}
}

var (
	logTime   = regexp.MustCompile(`time=\S+ `)
	hexSerial = regexp.MustCompile(`\b[0-9A-F]{12,}\b`)
	lowerHex  = regexp.MustCompile(`replaces=[0-9a-f]+`)
)

// step runs args (after "regctl certs") like must and appends the command
// and its normalised output (ROOT, SERIAL, no log times) to the transcript.
func (e *certsEnv) step(want int, args ...string) {
	e.t.Helper()
	args = append([]string{"certs"}, args...)
	e.must(want, args...)
	norm := func(s string) string {
		s = strings.ReplaceAll(s, e.root, "ROOT")
		s = logTime.ReplaceAllString(s, "")
		s = lowerHex.ReplaceAllString(s, "replaces=SERIAL")
		return hexSerial.ReplaceAllString(s, "SERIAL")
	}
	fmt.Fprintf(&e.transcript, "$ regctl %s\n", strings.ReplaceAll(cmdtest.ShellJoin(args), e.root, "ROOT"))
	e.transcript.WriteString(norm(e.out.String()))
	if e.errOut.Len() > 0 {
		for _, line := range strings.SplitAfter(strings.TrimSuffix(norm(e.errOut.String()), "\n"), "\n") {
			e.transcript.WriteString("stderr: " + line)
		}
		e.transcript.WriteString("\n")
	}
	if want != 0 {
		fmt.Fprintf(&e.transcript, "[exit %d]\n", want)
	}
	e.transcript.WriteString("\n")
}

// TestCertsLifecycle walks a certificate through obtain, renew and status
// with a fake CA and a fixed clock, and compares the transcript with
// testdata/certs_lifecycle.golden.
func TestCertsLifecycle(t *testing.T) {
	e := newCertsEnv(t)
	iss := certstest.NewFakeIssuer(t, e.now)
	rl := &certstest.RecordingReloader{}
	e.issuer, e.reloader = iss, rl
	day := 24 * time.Hour
	root := "--root=" + e.root

	e.step(1, "status", root)
	e.step(0, "obtain", "registry.example.com", "www.example.com", root, "--acme-email=ops@example.com", "--cert-profile=classic")
	if got := rl.Calls(); got != "check,reload" {
		t.Errorf("obtain: reloader %q", got)
	}
	e.step(0, "obtain", "registry.example.com", "www.example.com", root)
	e.step(0, "status", root)

	// The CA suggests renewing between day 59 and 61.
	iss.Set(func(f *certstest.FakeIssuer) {
		f.Window = func(leaf *x509.Certificate) (*certs.RenewalWindow, error) {
			return &certs.RenewalWindow{Start: leaf.NotBefore.Add(59 * day), End: leaf.NotBefore.Add(61 * day), FetchedAt: e.now()}, nil
		}
	})
	e.setNow(certsNow.Add(30 * day))
	e.step(0, "renew", root)
	if got := rl.Calls(); got != "" {
		t.Errorf("renew with nothing due reloaded nginx: %q", got)
	}
	e.step(0, "status", root)

	e.setNow(certsNow.Add(59*day - 6*time.Hour))
	e.step(0, "renew", root, "--deploy-hook=true")
	if got := rl.Calls(); got != "check,reload" {
		t.Errorf("renew: reloader %q", got)
	}
	e.step(0, "renew", root, "-q")
	e.step(0, "status", root)

	// Staging never replaces production.
	e.step(1, "obtain", "registry.example.com", "www.example.com", root, "--staging", "--force")
	e.step(1, "renew", root, "--staging", "--force", "--no-random-sleep")

	// Monitoring.
	e.step(1, "status", root, "--warn-days=100")
	e.setNow(certsNow.Add(59*day + 80*day))
	e.step(1, "status", root)
	e.step(1, "status", root, "-o", "json")
	e.setNow(certsNow.Add(59*day + 90*day))
	e.step(1, "status", root)

	cmdtest.Golden(t, "certs_lifecycle", e.transcript.String())

	// Random sleeps: non-TTY runs without --no-random-sleep slept at most
	// 8 minutes.
	if len(e.sleeps) != 3 {
		t.Errorf("slept %d times, want 3", len(e.sleeps))
	}
	for _, d := range e.sleeps {
		if d < 0 || d >= 8*time.Minute {
			t.Errorf("random sleep %s out of range", d)
		}
	}
	calls := iss.Calls()
	if len(calls) != 2 || !strings.HasPrefix(calls[1], "renew registry.example.com,www.example.com profile=classic replaces=") {
		t.Errorf("issuer calls %q", calls)
	}
}

func TestCertsRenewTTYDoesNotSleep(t *testing.T) {
	e := newCertsEnv(t)
	e.issuer, e.reloader = certstest.NewFakeIssuer(t, e.now), &certstest.RecordingReloader{}
	e.ios.SetStdoutTTY(true)
	e.must(0, "certs", "renew", "--root", e.root)
	if len(e.sleeps) != 0 {
		t.Errorf("slept on a terminal: %v", e.sleeps)
	}
	if !strings.Contains(e.errOut.String(), "No certificates in") {
		t.Errorf("stderr: %s", e.errOut)
	}
}

func TestCertsRenewFailures(t *testing.T) {
	e := newCertsEnv(t)
	iss := certstest.NewFakeIssuer(t, e.now)
	rl := &certstest.RecordingReloader{}
	e.issuer, e.reloader = iss, rl
	e.must(0, "certs", "obtain", "a.example", "--root", e.root)
	e.setNow(certsNow.Add(61 * 24 * time.Hour))

	iss.Set(func(f *certstest.FakeIssuer) { f.Err = errors.New("CA unavailable") })
	e.must(1, "certs", "renew", "--root", e.root, "--no-random-sleep")
	if !strings.Contains(e.out.String(), "a.example: FAILED: renew a.example: CA unavailable") {
		t.Errorf("stdout: %s", e.out)
	}
	iss.Set(func(f *certstest.FakeIssuer) { f.Err = nil })
	rl.Calls()

	rl.CheckErr = errors.New("nginx: [emerg] cannot load certificate")
	e.must(1, "certs", "renew", "--root", e.root, "--no-random-sleep")
	if !strings.Contains(e.out.String(), "a.example: renewed") || !strings.Contains(e.out.String(), "nginx: NOT reloaded: nginx: [emerg] cannot load certificate") {
		t.Errorf("stdout: %s", e.out)
	}
	if got := rl.Calls(); got != "check" {
		t.Errorf("reloader %q: a failed check must not reload", got)
	}
	e.must(1, "certs", "status", "--root", e.root)
	if !strings.Contains(e.errOut.String(), "warning: nginx was not reloaded after the certificates changed (now) and may serve old ones") {
		t.Errorf("status stderr: %s", e.errOut)
	}
	rl.CheckErr = nil
	e.must(0, "certs", "renew", "--root", e.root, "--no-random-sleep")
	if !strings.Contains(e.out.String(), "a.example: not due") || !strings.Contains(e.out.String(), "nginx: configuration OK, reloaded") {
		t.Errorf("retry: stdout: %s", e.out)
	}
	e.must(0, "certs", "status", "--root", e.root)

	e.setNow(certsNow.Add(2 * 61 * 24 * time.Hour))
	e.must(1, "certs", "renew", "--root", e.root, "--no-random-sleep", "--deploy-hook", "echo hook-output; exit 7")
	if !strings.Contains(e.out.String(), "FAILED: deploy hook for a.example: sh -c echo hook-output; exit 7: exit status 7: hook-output") {
		t.Errorf("stdout: %s", e.out)
	}
}

func TestCertsFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		config   string
		wantCode int
		wantErr  string
		// wantStderr is a warning the command prints ("" for none).
		wantStderr string
		check      func(t *testing.T, o *ObtainOptions)
	}{
		{name: "defaults", args: []string{"obtain", "R.example.com"}, check: func(t *testing.T, o *ObtainOptions) {
			if o.Directory != certs.LetsEncryptProduction || o.Staging || o.Root != "/opt/regctl" ||
				o.Challenge.Mode != certs.ChallengeAuto || o.Challenge.HTTPPort != 80 ||
				o.Challenge.Webroot != "/opt/regctl/acme-webroot" || o.ComposeFile != "/opt/regctl/compose.yaml" ||
				o.NginxService != "nginx" || o.Names[0] != "r.example.com" {
				t.Errorf("options %+v", o)
			}
		}},
		{name: "staging", args: []string{"obtain", "a.example", "--staging"}, check: func(t *testing.T, o *ObtainOptions) {
			if o.Directory != certs.LetsEncryptStaging || !o.Staging {
				t.Errorf("directory %s staging %v", o.Directory, o.Staging)
			}
		}},
		{name: "custom directory marked staging", args: []string{"obtain", "a.example", "--staging", "--acme-directory", "https://127.0.0.1:14000/dir"}, check: func(t *testing.T, o *ObtainOptions) {
			if o.Directory != "https://127.0.0.1:14000/dir" || !o.Staging {
				t.Errorf("directory %s staging %v", o.Directory, o.Staging)
			}
		}},
		{name: "env", args: []string{"obtain", "a.example"}, env: map[string]string{"REGCTL_ACME_EMAIL": "env@example.com", "REGCTL_ROOT": "/srv/regctl", "REGCTL_CERT_PROFILE": "shortlived"}, check: func(t *testing.T, o *ObtainOptions) {
			if o.Email != "env@example.com" || o.Root != "/srv/regctl" || o.Profile != "shortlived" || o.Challenge.Webroot != "/srv/regctl/acme-webroot" {
				t.Errorf("options %+v", o)
			}
		}},
		{name: "config file", args: []string{"obtain", "a.example", "--acme-email", "flag@example.com"}, config: "acme-directory: https://ca.example/dir\nhttp-port: 8080\nchallenge: webroot\n",
			wantStderr: "acme-directory is deprecated and goes in the next release: write acme.ca", check: func(t *testing.T, o *ObtainOptions) {
				if o.Email != "flag@example.com" || o.Directory != "https://ca.example/dir" || o.Challenge.HTTPPort != 8080 || o.Challenge.Mode != certs.ChallengeWebroot {
					t.Errorf("options %+v", o)
				}
			}},
		// regctl.yaml's own keys, as the renewal job's --config gives them.
		{name: "regctl.yaml", args: []string{"obtain", "a.example"}, config: "root: /srv/r\nacme:\n  email: yaml@example.com\n  ca: https://ca.example/yaml\n", check: func(t *testing.T, o *ObtainOptions) {
			if o.Email != "yaml@example.com" || o.Directory != "https://ca.example/yaml" || o.Root != "/srv/r" {
				t.Errorf("options %+v", o)
			}
		}},
		{name: "flags beat regctl.yaml", args: []string{"obtain", "a.example", "--acme-email", "flag@example.com", "--acme-directory", "https://ca.example/flag"}, config: "acme:\n  email: yaml@example.com\n  ca: https://ca.example/yaml\n", check: func(t *testing.T, o *ObtainOptions) {
			if o.Email != "flag@example.com" || o.Directory != "https://ca.example/flag" {
				t.Errorf("options %+v", o)
			}
		}},
		{name: "old and new key", args: []string{"obtain", "a.example"}, config: "acme-email: old@example.com\nacme:\n  email: yaml@example.com\n", wantCode: cmdutil.ExitError, wantErr: "acme-email and acme.email are the same setting: keep acme.email"},
		{name: "dns", args: []string{"obtain", "*.example.com", "example.com", "--challenge", "dns", "--dns-provider", "exec", "--dns-resolver", "127.0.0.1:53"}, check: func(t *testing.T, o *ObtainOptions) {
			if o.Challenge.Mode != certs.ChallengeDNS || o.Challenge.DNSProvider != "exec" || o.Challenge.DNSResolvers[0] != "127.0.0.1:53" || o.Names[0] != "*.example.com" {
				t.Errorf("options %+v", o)
			}
		}},
		{name: "no names", args: []string{"obtain"}, wantCode: cmdutil.ExitUsage, wantErr: "requires at least 1 arg"},
		{name: "bad name", args: []string{"obtain", "a b"}, wantCode: cmdutil.ExitUsage, wantErr: `invalid name "a b"`},
		{name: "wildcard needs dns", args: []string{"obtain", "*.example.com"}, wantCode: cmdutil.ExitUsage, wantErr: "wildcard names need --challenge dns"},
		{name: "dns needs provider", args: []string{"obtain", "a.example", "--challenge", "dns"}, wantCode: cmdutil.ExitUsage, wantErr: "--challenge dns needs --dns-provider: one of exec, httpreq"},
		{name: "bad challenge", args: []string{"obtain", "a.example", "--challenge", "tls-alpn"}, wantCode: cmdutil.ExitUsage, wantErr: `--challenge: unknown challenge "tls-alpn"`},
		{name: "bad profile", args: []string{"obtain", "a.example", "--cert-profile", "Short Lived"}, wantCode: cmdutil.ExitUsage, wantErr: "--cert-profile: invalid certificate profile"},
		{name: "bad directory", args: []string{"obtain", "a.example", "--acme-directory", "acme.example"}, wantCode: cmdutil.ExitUsage, wantErr: "want an https:// URL"},
		{name: "bad port", args: []string{"obtain", "a.example", "--http-port", "0"}, wantCode: cmdutil.ExitUsage, wantErr: "--http-port 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			e := newCertsEnv(t)
			args := tt.args
			if tt.config != "" {
				path := filepath.Join(t.TempDir(), "regctl.yaml")
				if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			var got *ObtainOptions
			certsCmd := &cobra.Command{Use: "certs"}
			certsCmd.AddCommand(NewCmdObtain(e.f, func(_ context.Context, o *ObtainOptions) error { got = o; return nil }))
			root := cmdtest.Root(e.f, certsCmd)
			root.SetArgs(append([]string{"certs"}, args...))
			root.SetOut(e.out)
			root.SetErr(e.errOut)
			_, err := root.ExecuteC()
			code := cmdutil.ExitOK
			var fe *cmdutil.FlagError
			switch {
			case err == nil:
			case errors.As(err, &fe):
				code = cmdutil.ExitUsage
			default:
				code = cmdutil.ExitError
			}
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (err %v)", code, tt.wantCode, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
			if stderr := e.errOut.String(); tt.wantStderr == "" && stderr != "" || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q, want %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestCertsRenewFlags(t *testing.T) {
	e := newCertsEnv(t)
	var got *RenewOptions
	cmd := NewCmdRenew(e.f, func(_ context.Context, o *RenewOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--days", "30", "--interval", "6h", "--no-random-sleep", "--deploy-hook", "systemctl reload x", "-q", "--force", "a.example"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Days != 30 || got.Interval != 6*time.Hour || !got.NoRandomSleep || got.DeployHook != "systemctl reload x" ||
		!got.Quiet || !got.Force || len(got.Names) != 1 || got.MaxDelay != 8*time.Minute {
		t.Errorf("options %+v", got)
	}
	for _, bad := range [][]string{{"--days", "-1"}, {"--interval", "0s"}} {
		cmd := NewCmdRenew(e.f, func(context.Context, *RenewOptions) error { return nil })
		cmd.SetArgs(bad)
		cmd.SetOut(e.out)
		cmd.SetErr(e.errOut)
		var fe *cmdutil.FlagError
		if err := cmd.Execute(); !errors.As(err, &fe) {
			t.Errorf("%v: err = %v, want a cmdutil.FlagError", bad, err)
		}
	}
}

func TestCertsStatusTTY(t *testing.T) {
	e := newCertsEnv(t)
	ca := certstest.NewCA(t, "R11")
	st := certs.Store{Dir: certs.Layout{Root: e.root}.LiveDir()}
	day := 24 * time.Hour
	for _, c := range []struct {
		name   string
		nb     time.Time
		life   time.Duration
		meta   certs.Meta
		stored string
	}{
		{"registry.example.com", certsNow.Add(-10 * day), 90 * day, certs.Meta{ARI: &certs.RenewalWindow{Start: certsNow.Add(49 * day), End: certsNow.Add(51 * day)}}, ""},
		{"short.example.com", certsNow.Add(-5*day - 12*time.Hour), 6 * day, certs.Meta{Staging: true}, ""},
	} {
		if _, err := st.Save(c.name, ca.Issue([]string{c.name}, c.nb, c.nb.Add(c.life)), c.meta); err != nil {
			t.Fatal(err)
		}
	}
	e.ios.SetStdoutTTY(true)
	code := e.run("certs", "status", "--root", e.root)
	got := fmt.Sprintf("%s--- stderr:\n%s[exit %d]\n", e.out, strings.ReplaceAll(e.errOut.String(), e.root, "ROOT"), code)
	cmdtest.Golden(t, "certs_status_tty", got)
}

func TestCertsDHParams(t *testing.T) {
	e := newCertsEnv(t)
	e.must(0, "certs", "dhparams", "--root", e.root)
	path := certs.Layout{Root: e.root}.DHParams()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := certs.ParseDHParams(data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Named() != "ffdhe2048" {
		t.Errorf("default dhparams are %q, want ffdhe2048", p.Named())
	}
	if want := "Wrote the RFC 7919 group ffdhe2048 to " + path + "\n"; e.errOut.String() != want {
		t.Errorf("stderr %q, want %q", e.errOut, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}

	e.must(0, "certs", "dhparams", "--bits", "4096", "--out", "-")
	if p, err := certs.ParseDHParams(e.out.Bytes()); err != nil || p.Named() != "ffdhe4096" {
		t.Errorf("--bits 4096 --out -: %v %v", p, err)
	}

	out := filepath.Join(t.TempDir(), "sub", "dh.pem")
	e.must(0, "certs", "dhparams", "--generate", "512", "--out", out)
	data, _ = os.ReadFile(out)
	p, err = certs.ParseDHParams(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil || p.P.BitLen() != 512 || p.Named() != "" {
		t.Errorf("generated parameters: %v, %d bits", err, p.P.BitLen())
	}
	stderr := e.errOut.String()
	for _, want := range []string{"warning: 512-bit DH parameters are weak", "Generating 512-bit safe-prime DH parameters", "*\n", "Wrote fresh 512-bit DH parameters"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	for _, bad := range [][]string{
		{"--bits", "1024"},
		{"--generate", "256"},
		{"--bits", "3072", "--generate", "2048"},
	} {
		e.must(cmdutil.ExitUsage, append([]string{"certs", "dhparams", "--root", e.root}, bad...)...)
	}
}

// TestCertsStatusJSON checks the JSON fields monitoring scripts read.
func TestCertsStatusJSON(t *testing.T) {
	e := newCertsEnv(t)
	ca := certstest.NewCA(t, "R11")
	st := certs.Store{Dir: certs.Layout{Root: e.root}.LiveDir()}
	if _, err := st.Save("a.example", ca.Issue([]string{"a.example"}, certsNow.Add(-80*24*time.Hour), certsNow.Add(10*24*time.Hour)), certs.Meta{}); err != nil {
		t.Fatal(err)
	}
	// -o json, and the deprecated --json (with a warning on stderr).
	for _, flag := range [][]string{{"-o", "json"}, {"--json"}} {
		e.out.Reset()
		e.errOut.Reset()
		e.must(1, append([]string{"certs", "status", "--root", e.root}, flag...)...)
		var got []map[string]any
		if err := json.Unmarshal(e.out.Bytes(), &got); err != nil {
			t.Fatalf("%v: %v", flag, err)
		}
		if len(got) != 1 || got[0]["days_left"] != 10.0 || got[0]["warning"] != true || got[0]["expired"] != false || got[0]["renewal_due"] != true {
			t.Errorf("%v: json %v", flag, got)
		}
		if warned := strings.Contains(e.errOut.String(), "--json is deprecated"); warned != (flag[0] == "--json") {
			t.Errorf("%v: stderr %q", flag, e.errOut)
		}
	}
	e.must(2, "certs", "status", "--root", e.root, "-o", "xml")
}
