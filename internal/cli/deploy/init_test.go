package deploy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/templates"
)

// provExample writes the shipped example with the domains set to
// registry.test and auth.test.
func provExample(t *testing.T, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "regctl.yaml")
	data := strings.Replace(string(templates.Example), "registry: registry.example.com", "registry: registry.test", 1)
	data = strings.Replace(data, `auth: ""`, "auth: auth.test", 1)
	if err := os.WriteFile(p, []byte(data+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runRender runs `regctl ARGS` with render's runF replaced by fn.
func provCmd(t *testing.T, args []string, build func(f *cmdutil.Factory) *cobra.Command) (code int, stdout, stderr string) {
	t.Helper()
	ios, _, out, errOut := cmdutil.Test()
	f := cmdutil.NewFactory(ios)
	f.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	root := cmdtest.Root(f, build(f))
	root.SetArgs(args)
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	_, err := root.ExecuteContextC(context.Background())
	switch {
	case err == nil:
	case errors.As(err, new(*cmdutil.FlagError)):
		code = cmdutil.ExitUsage
		errOut.WriteString("error: " + err.Error() + "\n")
	default:
		code = cmdutil.ExitError
		errOut.WriteString("error: " + err.Error() + "\n")
	}
	return code, out.String(), errOut.String()
}

// provCapture runs `regctl render ARGS` and returns the decoded config.
func provCapture(t *testing.T, args ...string) (*config.Config, string, int) {
	t.Helper()
	var got *config.Config
	code, _, stderr := provCmd(t, append([]string{"render"}, args...), func(f *cmdutil.Factory) *cobra.Command {
		return NewCmdRender(f, func(_ context.Context, o *RenderOptions) error { got = o.Config; return nil })
	})
	return got, stderr, code
}

func TestExampleConfigLoads(t *testing.T) {
	p := provExample(t, "")
	c, stderr, code := provCapture(t, "--config", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := config.Defaults()
	want.Domains = config.Domains{Registry: "registry.test", Auth: "auth.test"}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("example config decodes to\n%+v\nwant the defaults\n%+v", *c, want)
	}
	// Every key is documented, with its environment variable.
	for _, k := range config.Keys() {
		leaf := k.Name[strings.LastIndex(k.Name, ".")+1:]
		if !strings.Contains(string(templates.Example), " "+leaf+":") && !strings.HasPrefix(string(templates.Example), leaf+":") && !strings.Contains(string(templates.Example), "\n"+leaf+":") {
			t.Errorf("regctl.example.yaml lacks key %s", k.Name)
		}
		if !strings.Contains(string(templates.Example), k.Env) {
			t.Errorf("regctl.example.yaml does not name %s for %s", k.Env, k.Name)
		}
	}
}

func TestConfigEnvOverrides(t *testing.T) {
	p := provExample(t, "")
	t.Setenv("REGCTL_DOMAINS_REGISTRY", "other.test")
	t.Setenv("REGCTL_TLS_HSTS_MAX_AGE", "0")
	t.Setenv("REGCTL_TOKEN_LIFETIME", "10m")
	t.Setenv("REGCTL_STORAGE_S3_SECURE", "false")
	t.Setenv("REGCTL_DATABASE_BACKEND", "sqlite")
	c, stderr, code := provCapture(t, "--config", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if c.Domains.Registry != "other.test" || c.TLS.HSTSMaxAge != 0 || c.Token.Lifetime != 10*time.Minute ||
		c.Storage.S3.Secure || c.Database.Backend != config.BackendSQLite {
		t.Errorf("environment not applied: %+v", *c)
	}
}

func TestConfigEnvOnly(t *testing.T) {
	t.Setenv("REGCTL_DOMAINS_REGISTRY", "env.test")
	c, stderr, code := provCapture(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if c.Domains.Registry != "env.test" || c.Root != "/opt/regctl" {
		t.Errorf("config %+v", *c)
	}
}

// TestRenamedKeys: a regctl.yaml written with the old '_' spellings still
// loads, each value where its new key puts it, with one warning per key
// that names the new spelling.
func TestRenamedKeys(t *testing.T) {
	p := provExample(t, "")
	data, _ := os.ReadFile(p)
	s := string(data)
	for _, r := range [][2]string{
		{"hsts-max-age: 63072000", "hsts_max_age: 300"},
		{"refresh-lifetime: 2160h", "refresh_lifetime: 1h"},
		{"log-format: json", "log_format: text"},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("example lacks %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	cmdtest.WriteFile(t, p, s)
	c, stderr, code := provCapture(t, "--config", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if c.TLS.HSTSMaxAge != 300 || c.Token.RefreshLifetime != time.Hour || c.Token.LogFormat != "text" {
		t.Errorf("old spellings not read: hsts %d refresh %s log %s", c.TLS.HSTSMaxAge, c.Token.RefreshLifetime, c.Token.LogFormat)
	}
	for _, w := range []string{
		"tls.hsts_max_age is deprecated and goes in the next release: write tls.hsts-max-age",
		"token.refresh_lifetime is deprecated and goes in the next release: write token.refresh-lifetime",
		"token.log_format is deprecated and goes in the next release: write token.log-format",
	} {
		if strings.Count(stderr, w) != 1 {
			t.Errorf("stderr does not warn once %q:\n%s", w, stderr)
		}
	}
}

func TestConfigErrorsNameFileAndKey(t *testing.T) {
	for _, tt := range []struct {
		name, extra string
		want        []string
	}{
		{"unknown nested key", "tls:\n  ciphers: ALL\n", []string{"unknown key(s) tls.ciphers"}},
		{"unknown top key", "domainz: x\n", []string{"unknown key(s) domainz"}},
		{"bad value", "ssh:\n  port: 0\n", []string{"ssh.port: 0 is not a port"}},
		{"wrong type", "tls:\n  hsts-max-age: forever\n", []string{"'tls.hsts-max-age' cannot parse value as 'int'"}},
		{"old and new spelling", "tls:\n  hsts_max_age: 300\n", []string{"tls.hsts_max_age and tls.hsts-max-age are the same setting: keep tls.hsts-max-age"}},
		{"injection", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			extra := tt.extra
			want := tt.want
			if tt.name == "injection" {
				extra = ""
				want = []string{"domains.registry", "not a valid host name"}
			}
			p := provExample(t, "")
			data, _ := os.ReadFile(p)
			// The later YAML key wins for duplicates in viper? Rewrite instead.
			s := string(data)
			if tt.name == "injection" {
				s = strings.Replace(s, "registry: registry.test", `registry: "a.example; include /etc/passwd"`, 1)
			} else {
				s = provMerge(t, s, extra)
			}
			os.WriteFile(p, []byte(s), 0o600)
			_, stderr, code := provCapture(t, "--config", p)
			if code == 0 {
				t.Fatal("accepted")
			}
			for _, w := range append(want, p) {
				if !strings.Contains(stderr, w) {
					t.Errorf("error lacks %q: %s", w, stderr)
				}
			}
		})
	}
}

// provMerge puts the lines of extra (one section with one key, or a
// top-level key) into the example, replacing a key of the same name.
func provMerge(t *testing.T, doc, extra string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(extra), "\n")
	if len(lines) == 1 {
		return doc + "\n" + lines[0] + "\n"
	}
	section, kv := strings.TrimSuffix(lines[0], ":"), strings.TrimSpace(lines[1])
	key := kv[:strings.Index(kv, ":")]
	out := strings.Split(doc, "\n")
	in := false
	for i, l := range out {
		switch {
		case l == section+":":
			in = true
		case in && strings.HasPrefix(l, "  "+key+":"):
			out[i] = "  " + kv
			return strings.Join(out, "\n")
		case in && len(l) > 0 && l[0] != ' ' && l[0] != '#':
			out[i] = "  " + kv + "\n" + l
			return strings.Join(out, "\n")
		}
	}
	return doc + "\n" + extra
}

var provFakeEnv = func() (render.Env, error) {
	return render.Env{BinaryPath: "/usr/local/bin/regctl", Binary: []byte("\x7fELF fake regctl")}, nil
}

func provRenderWith(_ ...string) (func(f *cmdutil.Factory) *cobra.Command, *RenderOptions) {
	var opts RenderOptions
	return func(f *cmdutil.Factory) *cobra.Command {
		return NewCmdRender(f, func(ctx context.Context, o *RenderOptions) error {
			o.Env = provFakeEnv
			o.Host = func(root string) provision.Host { return provNoChown{provision.NewExecHost(root, nil)} }
			opts = *o
			return renderRun(ctx, o)
		})
	}, &opts
}

// provNoChown lets the render tests run as any user.
type provNoChown struct{ provision.Host }

func (provNoChown) Chown(string, int, int) error { return nil }

func TestRenderCommand(t *testing.T) {
	p := provExample(t, "")
	out := filepath.Join(t.TempDir(), "root")
	build, _ := provRenderWith()
	code, _, stderr := provCmd(t, []string{"render", "--config", p, "--out", out}, build)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{render.ComposeFile, render.NginxConfFile, render.RegistryConfFile, render.TokenConfFile, render.BinaryFile, render.MongoPasswordFile, "keys/signing.key"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if !strings.Contains(stderr, "up -d --build --wait") {
		t.Errorf("no hint to start the containers: %s", stderr)
	}
	cron, _ := os.ReadFile(filepath.Join(out, render.RenewCronFile))
	if !strings.Contains(string(cron), "/usr/local/bin/regctl certs renew --config "+p+" --root ") {
		t.Errorf("renewal job does not use the config file:\n%s", cron)
	}
	pw, _ := os.ReadFile(filepath.Join(out, render.MongoPasswordFile))

	// Again: nothing to do.
	code, _, stderr = provCmd(t, []string{"render", "--config", p, "--out", out}, build)
	if code != 0 || !strings.Contains(stderr, "is up to date") {
		t.Fatalf("second render: exit %d: %s", code, stderr)
	}

	// A change, previewed with --diff: diff on stdout, nothing written.
	os.WriteFile(p, []byte(strings.Replace(provRead(t, p), "profile: modern", "profile: intermediate", 1)), 0o600)
	before := provRead(t, filepath.Join(out, render.NginxConfFile))
	code, stdout, stderr := provCmd(t, []string{"render", "--config", p, "--out", out, "--diff"}, build)
	if code != 0 {
		t.Fatalf("--diff: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "-    ssl_protocols TLSv1.3;") || !strings.Contains(stdout, "+    ssl_protocols TLSv1.2 TLSv1.3;") {
		t.Errorf("--diff output:\n%s", stdout)
	}
	if provRead(t, filepath.Join(out, render.NginxConfFile)) != before {
		t.Error("--diff wrote nginx.conf")
	}

	// A hand edit stops the render; --force overwrites and keeps a backup.
	conf := filepath.Join(out, render.NginxConfFile)
	os.WriteFile(conf, []byte(before+"# hand edit\n"), 0o644)
	code, _, stderr = provCmd(t, []string{"render", "--config", p, "--out", out}, build)
	if code == 0 || !strings.Contains(stderr, conf) || !strings.Contains(stderr, "--force") {
		t.Fatalf("render over a hand edit: exit %d: %s", code, stderr)
	}
	code, _, stderr = provCmd(t, []string{"render", "--config", p, "--out", out, "--force"}, build)
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	if !strings.Contains(provRead(t, conf), "TLSv1.2") || !strings.Contains(stderr, "restart") && !strings.Contains(stderr, "reload") {
		t.Errorf("after --force: %s", stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(out, render.MongoPasswordFile)); string(got) != string(pw) {
		t.Error("the MongoDB password was regenerated")
	}
}

func provRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// provQueryless answers every query with "not installed": a fresh host.
type provQueryless struct{ provision.Host }

func (provQueryless) Query(context.Context, string, ...string) ([]byte, error) {
	return nil, errors.New("exit status 1")
}

func provSystem() provision.System {
	return provision.System{
		EUID:       func() int { return 0 },
		OSRelease:  func() ([]byte, error) { return []byte("ID=ubuntu\nVERSION_ID=\"22.04\"\n"), nil },
		PortFree:   func(int) error { return nil },
		LookupHost: func(context.Context, string) ([]string, error) { return []string{"192.0.2.10"}, nil },
		HostAddrs:  func() ([]net.IP, error) { return []net.IP{net.ParseIP("192.0.2.10")}, nil },
		FreeSpace:  func(string) (uint64, error) { return 100 << 30, nil },
	}
}

func provInitWith(sys provision.System) func(f *cmdutil.Factory) *cobra.Command {
	return func(f *cmdutil.Factory) *cobra.Command {
		return NewCmdInit(f, func(ctx context.Context, o *InitOptions) error {
			o.System = sys
			o.Env = provFakeEnv
			o.Host = func(root string) provision.Host { return provQueryless{provision.NewExecHost(root, nil)} }
			return initRun(ctx, o)
		})
	}
}

func TestInitDryRun(t *testing.T) {
	p := provExample(t, "")
	root := filepath.Join(t.TempDir(), "scratch")
	code, _, stderr := provCmd(t, []string{"init", "--config", p, "--root", root, "--dry-run", "--backend", "sqlite"}, provInitWith(provSystem()))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run created %s", root)
	}
	for _, want := range []string{
		"Preflight:", "ok   os", "Dry run: nothing on this host changes.",
		"[1/9] install packages", "would run: apt-get install",
		"would create " + root + "/nginx/nginx.conf", "+        listen 443 ssl;", "+        http2 on;",
		"would run: docker compose -f " + root + "/compose.yaml -p regctl up -d --wait",
		"Dry run complete: nothing was changed.",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if strings.Contains(stderr, "mongo") {
		t.Error("--backend sqlite still plans MongoDB")
	}
}

func TestInitPreflightFails(t *testing.T) {
	p := provExample(t, "")
	root := filepath.Join(t.TempDir(), "scratch")
	sys := provSystem()
	sys.EUID = func() int { return 1000 }
	code, _, stderr := provCmd(t, []string{"init", "--config", p, "--root", root, "--password-stdin"}, provInitWith(sys))
	if code == 0 || !strings.Contains(stderr, "FAIL root") || !strings.Contains(stderr, "preflight checks failed") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed preflight created %s", root)
	}
}

func TestInitNeedsPassword(t *testing.T) {
	p := provExample(t, "")
	root := filepath.Join(t.TempDir(), "scratch")
	code, _, stderr := provCmd(t, []string{"init", "--config", p, "--root", root}, provInitWith(provSystem()))
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, "--password-stdin") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

func TestInitFlags(t *testing.T) {
	p := provExample(t, "")
	var got *InitOptions
	capture := func(f *cmdutil.Factory) *cobra.Command {
		return NewCmdInit(f, func(_ context.Context, o *InitOptions) error { got = o; return nil })
	}
	// --store is init's old spelling of --backend: it still works, with a
	// deprecation warning on stderr.
	for _, tc := range []struct{ flag, warning string }{
		{"--backend", ""},
		{"--store", "warning: init --store is deprecated and goes in the next release: use --backend"},
	} {
		got = nil
		code, _, stderr := provCmd(t, []string{"init", "--config", p, "--root", "/srv/reg", tc.flag, "sqlite", "--self-signed", "--skip-check", "dns", "--admin", "root"}, capture)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.flag, code, stderr)
		}
		if got.Config.Root != "/srv/reg" || got.Config.Database.Backend != "sqlite" || !got.SelfSigned || got.Admin != "root" || got.SkipChecks[0] != "dns" || got.ConfigPath != p {
			t.Errorf("%s: options %+v", tc.flag, got)
		}
		if tc.warning == "" && strings.Contains(stderr, "deprecated") || !strings.Contains(stderr, tc.warning) {
			t.Errorf("%s: stderr %q, want warning %q", tc.flag, stderr, tc.warning)
		}
	}
	for _, args := range [][]string{{"--backend", "postgres"}, {"--store", "mongodb://h/db"}, {"--skip-check", "root"}, {"--root", "relative/../x y"}, {"--join"}} {
		code, _, stderr := provCmd(t, append([]string{"init", "--config", p}, args...), capture)
		if code != cmdutil.ExitUsage {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	ios, _, _, _ := cmdutil.Test()
	// Execute runs regctl's error handling over healthcheck.
	Execute := func(ctx context.Context, f *cmdutil.Factory, args []string) int {
		return cmdutil.Execute(ctx, cmdtest.Root(f, NewCmdHealthcheck(f)), ios, args)
	}
	if code := Execute(context.Background(), cmdutil.NewFactory(ios), []string{"healthcheck", ok.URL}); code != 0 {
		t.Errorf("healthy: exit %d", code)
	}
	if code := Execute(context.Background(), cmdutil.NewFactory(ios), []string{"healthcheck", bad.URL}); code == 0 {
		t.Error("unhealthy: exit 0")
	}
}

// A configuration path with characters a shell would interpret cannot reach
// the renewal job: render refuses it and names --config.
func TestRenderRefusesUnsafeConfigPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my regctl")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "regctl.yaml")
	cmdtest.WriteFile(t, p, cmdtest.ValidRegctlYAML())
	out := filepath.Join(t.TempDir(), "root")
	build, _ := provRenderWith()
	code, _, stderr := provCmd(t, []string{"render", "--config", p, "--out", out}, build)
	if code == 0 || !strings.Contains(stderr, "--config") || !strings.Contains(stderr, p) {
		t.Fatalf("render with --config %q: exit %d\n%s", p, code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "compose.yaml")); err == nil {
		t.Error("render wrote files")
	}
}
