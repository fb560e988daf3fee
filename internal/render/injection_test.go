package render_test

import (
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
)

// The config file's path and regctl's own path go unquoted onto the
// renewal job's command line (cron runs it through /bin/sh; systemd splits
// ExecStart on spaces), so Files refuses paths a shell or systemd would
// read differently, naming where the path came from.
func TestFilesRefusesInjectedEnvPaths(t *testing.T) {
	c := config.Defaults()
	c.Domains.Registry = "registry.example.com"
	for _, tt := range []struct {
		name string
		env  render.Env
		want string
	}{
		{"config path with space", render.Env{ConfigPath: "/etc/my regctl/regctl.yaml", BinaryPath: "/usr/local/bin/regctl"}, "--config"},
		{"config path with semicolon", render.Env{ConfigPath: "/etc/x;reboot;#.yaml", BinaryPath: "/usr/local/bin/regctl"}, "--config"},
		{"config path with dollar", render.Env{ConfigPath: "/etc/$(reboot).yaml", BinaryPath: "/usr/local/bin/regctl"}, "--config"},
		{"config path with newline", render.Env{ConfigPath: "/etc/r.yaml\n* * * * * root reboot", BinaryPath: "/usr/local/bin/regctl"}, "--config"},
		{"relative config path", render.Env{ConfigPath: "regctl.yaml", BinaryPath: "/usr/local/bin/regctl"}, "--config"},
		{"binary path with space", render.Env{BinaryPath: "/opt/my tools/regctl"}, "regctl executable"},
		{"binary path with backquote", render.Env{BinaryPath: "/opt/`reboot`/regctl"}, "regctl executable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render.Files(&c, testSecrets, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Files: %v, want an error naming %s", err, tt.want)
			}
		})
	}
	files, err := render.Files(&c, testSecrets, render.Env{ConfigPath: "/etc/regctl/regctl.yaml", BinaryPath: "/usr/local/bin/regctl"})
	if err != nil {
		t.Fatal(err)
	}
	cron := string(render.Find(files, render.RenewCronFile).Data)
	if !strings.Contains(cron, " root /usr/local/bin/regctl certs renew --config /etc/regctl/regctl.yaml --root /opt/regctl ") {
		t.Errorf("renewal job:\n%s", cron)
	}
}
