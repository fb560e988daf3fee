package render

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/regctl/regctl/internal/config"
)

// RestartHints says how to make the running containers read the changed
// files.
func RestartHints(c *config.Config, written []string) []string {
	compose := fmt.Sprintf("docker compose -f %s -p %s", filepath.Join(c.Root, ComposeFile), c.Project)
	var hints []string
	seen := map[string]bool{}
	hint := func(key, h string) {
		if !seen[key] {
			seen[key] = true
			hints = append(hints, h)
		}
	}
	if slices.Contains(written, ComposeFile) && slices.Contains(written, NginxConfFile) {
		// A first render: nothing runs yet.
		return []string{compose + " up -d --build --wait", "or: regctl init --config ... (firewall, fail2ban, certificates, containers, first user)"}
	}
	for _, p := range written {
		top, _, _ := strings.Cut(p, "/")
		switch {
		case p == ComposeFile || top == "build":
			hint("up", compose+" up -d --build --wait")
		case top == "nginx":
			hint("nginx", compose+" exec nginx nginx -s reload")
		case top == "registry":
			hint("registry", compose+" restart registry")
		case top == "token":
			// One replica at a time, so that the others answer.
			services, _ := c.TokenReplicas()
			for _, svc := range services {
				hint(svc, compose+" restart "+svc)
			}
		case top == "fail2ban" || top == "firewall" || top == "renew" || top == "logrotate":
			hint("host", "regctl init --config ... (installs the firewall, fail2ban, renewal and log rotation files)")
		}
	}
	return hints
}
