package certs_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/certs/certstest"
)

func TestComposeReloader(t *testing.T) {
	r := &certstest.RecordingRunner{}
	rl := certs.ComposeReloader(r, "/opt/regctl/compose.yaml", "nginx")
	ctx := context.Background()
	if err := rl.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"docker", "compose", "-f", "/opt/regctl/compose.yaml", "exec", "-T", "nginx", "nginx", "-t"},
		{"docker", "compose", "-f", "/opt/regctl/compose.yaml", "exec", "-T", "nginx", "nginx", "-s", "reload"},
	}
	for i, c := range r.Commands() {
		if !slices.Equal(c.Argv, want[i]) {
			t.Errorf("command %d = %v, want %v", i, c.Argv, want[i])
		}
	}
	r.Err = errBoom
	if err := rl.Check(ctx); !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "nginx configuration test failed") {
		t.Errorf("Check error = %v", err)
	}

	n := certs.NginxReloader(&certstest.RecordingRunner{}, "/usr/sbin/nginx", "/tmp/p", "/tmp/p/nginx.conf")
	if got := n.ReloadCommand.String(); got != "/usr/sbin/nginx -p /tmp/p/ -c /tmp/p/nginx.conf -s reload" {
		t.Errorf("nginx reload command %q", got)
	}
}

func TestExecRunner(t *testing.T) {
	ctx := context.Background()
	out, err := certs.ExecRunner{}.Run(ctx, certs.Command{Argv: []string{"sh", "-c", "echo $X"}, Env: []string{"X=hello"}})
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("Run = %q, %v", out, err)
	}
	_, err = certs.ExecRunner{}.Run(ctx, certs.Command{Argv: []string{"sh", "-c", "echo broken config >&2; exit 3"}})
	var ce *certs.CommandError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "broken config") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing command: %v", err)
	}
	if _, err := (certs.ExecRunner{}).Run(ctx, certs.Command{}); err == nil {
		t.Error("empty command ran")
	}
}
