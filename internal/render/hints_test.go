package render

import (
	"slices"
	"testing"

	"github.com/regctl/regctl/internal/config"
)

func TestRestartHints(t *testing.T) {
	c := config.Defaults()
	c.Root, c.Project = "/opt/regctl", "regctl"
	compose := "docker compose -f /opt/regctl/compose.yaml -p regctl"
	for _, tc := range []struct {
		name    string
		written []string
		want    []string
	}{
		{"first render", []string{ComposeFile, NginxConfFile, "token/token-server.yaml"},
			[]string{compose + " up -d --build --wait", "or: regctl init --config ... (firewall, fail2ban, certificates, containers, first user)"}},
		{"nginx and token", []string{NginxConfFile, "token/token-server.yaml", "nginx/other.conf"},
			[]string{compose + " exec nginx nginx -s reload", compose + " restart regctl"}},
		{"host files", []string{"fail2ban/jail.conf", "firewall/ufw.sh"},
			[]string{"regctl init --config ... (installs the firewall, fail2ban, renewal and log rotation files)"}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RestartHints(&c, tc.written); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
