package render_test

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// variant is one configuration the golden files cover.
type variant struct {
	name   string
	mutate func(*config.Config)
}

// variants cover two domains and one; modern and intermediate; MongoDB,
// SQLite and an external MongoDB; filesystem and S3 storage.
var variants = []variant{
	{"two-domains-modern-mongo", func(c *config.Config) {
		c.Domains.Auth = "auth.example.com"
		c.ACME.Email = "ops@example.com"
	}},
	{"one-domain-intermediate-sqlite", func(c *config.Config) {
		c.TLS.Profile = config.ProfileIntermediate
		c.Database.Backend = config.BackendSQLite
		c.Token.LogFormat = "text"
		c.Token.KeyFormat = config.KeyFormatJWKS
	}},
	{"s3-preload-external-mongo", func(c *config.Config) {
		c.Root = "/srv/registry"
		c.Project = "images"
		c.TLS.HSTSPreload = true
		c.Database.URL = "mongodb://regctl:db-secret-pw@db.internal:27017/regctl?authSource=admin"
		c.Storage.Driver = config.DriverS3
		c.Storage.S3 = config.S3{
			Bucket: "images", Region: "eu-central-1", Endpoint: "https://s3.example.net",
			AccessKey: "AKIAEXAMPLE", SecretKey: "s3-secret/key+example", RootDirectory: "/registry",
			ForcePathStyle: true, Secure: true, DisableRedirect: true,
		}
		c.SSH.Port = 2222
		c.Upstreams.Registry = "registry:5001"
		c.Token.Replicas = 3
	}},
}

func (v variant) config(t testing.TB) *config.Config {
	t.Helper()
	c := config.Defaults()
	c.Domains.Registry = "registry.example.com"
	v.mutate(&c)
	if err := c.Validate(); err != nil {
		t.Fatalf("variant %s: %v", v.name, err)
	}
	return &c
}

// Fixed stand-ins for the generated secrets and the binary.
var (
	testSecrets = render.Secrets{
		MongoPassword:      "mongo-password-0123456789abcdef",
		RegistryHTTPSecret: "registry-http-secret-0123456789",
		TokenBundle:        []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"),
		TokenJWKS:          []byte(`{"keys":[]}` + "\n"),
	}
	// secretValues are the secret strings of testSecrets and the variants.
	secretValues = []string{testSecrets.MongoPassword, testSecrets.RegistryHTTPSecret, "db-secret-pw", "s3-secret/key+example"}
	testEnv      = render.Env{
		ConfigPath: "/etc/regctl/regctl.yaml",
		BinaryPath: "/usr/local/bin/regctl",
		Binary:     []byte("not really regctl\n"),
	}
)

func renderVariant(t testing.TB, v variant) []render.File {
	t.Helper()
	files, err := render.Files(v.config(t), testSecrets, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGolden(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for _, f := range renderVariant(t, v) {
				if f.Dir || f.Binary || f.Path == render.RegistryBundleFile || f.Path == render.RegistryJWKSFile {
					continue
				}
				golden := filepath.Join("testdata", "golden", v.name, filepath.FromSlash(f.Path))
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, f.Data, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/render -update)", err)
				}
				if !bytes.Equal(f.Data, want) {
					t.Errorf("%s differs from %s (run go test ./internal/render -update and review the diff):\n%s", f.Path, golden, f.Data)
				}
			}
		})
	}
}

func TestFilesModes(t *testing.T) {
	files := renderVariant(t, variants[0])
	want := map[string]os.FileMode{
		render.RegistryConfFile:               0o600,
		render.TokenConfFile:                  0o600,
		"registry":                            0o700,
		"token":                               0o700,
		render.LiveDir:                        0o700,
		render.ComposeFile:                    0o644,
		render.UFWScriptFile:                  0o755,
		render.BinaryFile:                     0o755,
		render.NginxConfFile:                  0o644,
		render.WebRootDir:                     0o755,
		render.FilterFile:                     0o644,
		render.LogrotateFile:                  0o644,
		filepath.ToSlash(render.MongoDataDir): 0o755,
	}
	for p, mode := range want {
		f := render.Find(files, p)
		if f == nil {
			t.Errorf("no %s", p)
			continue
		}
		if f.Mode != mode {
			t.Errorf("%s: mode %04o, want %04o", p, f.Mode, mode)
		}
	}
}

// logrotateBlocks parses a logrotate rule file: the directives of each
// "PATH {" ... "}" block by path, and the directives outside any block.
func logrotateBlocks(t testing.TB, rule []byte) (blocks map[string][]string, global []string) {
	t.Helper()
	blocks = map[string][]string{}
	cur := ""
	for i, line := range strings.Split(string(rule), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasSuffix(line, " {"):
			if cur != "" {
				t.Fatalf("line %d: a block inside the block of %s", i+1, cur)
			}
			cur = strings.TrimSuffix(line, " {")
			if _, dup := blocks[cur]; dup {
				t.Fatalf("line %d: a second block for %s", i+1, cur)
			}
			blocks[cur] = []string{}
		case line == "}":
			if cur == "" {
				t.Fatalf("line %d: } outside a block", i+1)
			}
			cur = ""
		case cur != "":
			blocks[cur] = append(blocks[cur], line)
		default:
			global = append(global, line)
		}
	}
	if cur != "" {
		t.Fatalf("the block of %s is not closed", cur)
	}
	return blocks, global
}

// TestLogrotateRule: the rule rotates each log the stack writes on the host
// (and nothing else) with copytruncate, never with create or su.
func TestLogrotateRule(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := v.config(t)
			f := render.Find(renderVariant(t, v), render.LogrotateFile)
			if f == nil {
				t.Fatalf("no %s", render.LogrotateFile)
			}
			if !strings.Contains(string(f.Data), "installed by `regctl init` as\n# "+render.InstalledLogrotate+".") {
				t.Errorf("the header does not name %s", render.InstalledLogrotate)
			}
			blocks, global := logrotateBlocks(t, f.Data)
			if len(global) != 0 {
				t.Errorf("directives outside a block change every later rule of logrotate.d: %q", global)
			}
			logs := []string{
				render.NewFail2banData(c).LogPath,      // what the jail reads
				path.Join(c.Root, render.AuditLogFile), // the audit log's bind mount
				path.Join(c.Root, render.RenewLogFile), // cron's >> target
			}
			if got := slices.Sorted(maps.Keys(blocks)); !slices.Equal(got, slices.Sorted(slices.Values(logs))) {
				t.Fatalf("the rule rotates %q, want %q", got, logs)
			}
			for _, log := range logs {
				d := blocks[log]
				for _, want := range []string{"copytruncate", "compress", "delaycompress", "missingok", "notifempty"} {
					if !slices.Contains(d, want) {
						t.Errorf("%s: no %s in %q", log, want, d)
					}
				}
				freq, keep := 0, 0
				for _, x := range d {
					switch first, _, _ := strings.Cut(x, " "); first {
					case "create", "su", "copy", "nocopytruncate", "nomissingok", "ifempty", "olddir", "postrotate", "prerotate":
						t.Errorf("%s: %q", log, x)
					case "daily", "weekly", "monthly":
						freq++
					case "rotate":
						keep++
						if n, err := strconv.Atoi(strings.TrimPrefix(x, "rotate ")); err != nil || n < 4 || n > 90 {
							t.Errorf("%s: %q", log, x)
						}
					}
				}
				if freq != 1 || keep != 1 {
					t.Errorf("%s: want one frequency and one rotate count, got %q", log, d)
				}
			}
		})
	}
}

func TestTemplatesHoldNoSecretsOutsideSecretFiles(t *testing.T) {
	for _, v := range variants {
		for _, f := range renderVariant(t, v) {
			if f.Dir || f.Mode == render.ModeSecret || f.Binary {
				continue
			}
			for _, s := range secretValues {
				if bytes.Contains(f.Data, []byte(s)) {
					t.Errorf("%s/%s (mode %04o) contains a secret", v.name, f.Path, f.Mode)
				}
			}
		}
	}
}

func TestNginxRules(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := v.config(t)
			conf := directives(render.Find(renderVariant(t, v), render.NginxConfFile).Data)
			for _, bad := range []string{"ssl_stapling", "X-XSS-Protection", "resolver ", "docker\\/1", "if ($http_user_agent", "\n    http2 "} {
				if strings.Contains(conf, bad) {
					t.Errorf("nginx.conf contains %q", bad)
				}
			}
			for _, good := range []string{"listen 443 ssl;", "http2 on;", "client_max_body_size 0;", "proxy_http_version 1.1;",
				"proxy_request_buffering off;", "proxy_read_timeout 900s;", "proxy_set_header Host $http_host;",
				"X-Forwarded-For", "X-Forwarded-Proto", "return 301 https://$host$request_uri;", "/.well-known/acme-challenge/"} {
				if !strings.Contains(conf, good) {
					t.Errorf("nginx.conf lacks %q", good)
				}
			}
			modern := c.TLS.Profile == config.ProfileModern
			if got := strings.Contains(conf, "ssl_protocols TLSv1.3;"); got != modern {
				t.Errorf("TLSv1.3 only = %v, want %v", got, modern)
			}
			if got := strings.Contains(conf, "ssl_ciphers"); got == modern {
				t.Errorf("ssl_ciphers present = %v with profile %s", got, c.TLS.Profile)
			}
			if got := strings.Contains(conf, "ssl_dhparam"); got == modern {
				t.Errorf("ssl_dhparam present = %v with profile %s (DHE only in intermediate)", got, c.TLS.Profile)
			}
			if got := strings.Contains(conf, "preload"); got != c.TLS.HSTSPreload {
				t.Errorf("HSTS preload = %v, want %v", got, c.TLS.HSTSPreload)
			}
			if got := strings.Count(conf, "server_name "+c.AuthDomain()+";"); got != 1 {
				t.Errorf("%d server blocks for %s", got, c.AuthDomain())
			}
		})
	}
}

func TestMissingFieldIsAnError(t *testing.T) {
	type partial struct{ Profile string }
	if _, err := render.Execute("nginx.conf.tmpl", partial{Profile: "modern"}); err == nil {
		t.Fatal("a data struct without the template's fields rendered")
	}
	if _, err := render.Execute("nginx.conf.tmpl", map[string]any{"Profile": "modern"}); err == nil {
		t.Fatal("a map without the template's keys rendered (missingkey=error)")
	}
}

func TestFilesNeedsSecrets(t *testing.T) {
	c := variants[0].config(t)
	if _, err := render.Files(c, render.Secrets{}, testEnv); err == nil {
		t.Fatal("rendered without secrets")
	}
}

func TestRenewSchedule(t *testing.T) {
	c := variants[0].config(t)
	d := render.NewRenewData(c, testEnv)
	if d.Minute < 0 || d.Minute > 59 {
		t.Errorf("minute %d", d.Minute)
	}
	var h1, h2 int
	if _, err := fmt.Sscanf(d.Hours, "%d,%d", &h1, &h2); err != nil || h2-h1 != 12 {
		t.Errorf("hours %q: want two, twelve hours apart", d.Hours)
	}
	if d.Command != "/usr/local/bin/regctl certs renew --config /etc/regctl/regctl.yaml --root /opt/regctl --acme-directory https://acme-v02.api.letsencrypt.org/directory --acme-email ops@example.com" {
		t.Errorf("command %q", d.Command)
	}
	if again := render.NewRenewData(c, testEnv); again != d {
		t.Error("the schedule is not stable across renders")
	}
}

// directives drops the comment lines of an nginx configuration.
func directives(conf []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(conf), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
