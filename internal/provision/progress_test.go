package provision

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

func TestShortCommand(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{[]string{"apt-get", "install", "-y", "-q", "--no-install-recommends", "ufw", "fail2ban", "logrotate", "docker.io"}, "apt-get install ufw fail2ban logrotate"},
		{[]string{"docker", "compose", "-f", "/opt/regctl/compose.yaml", "-p", "regctl", "up", "-d", "--wait", "--wait-timeout", "600"}, "docker compose up"},
		{[]string{"/usr/local/bin/regctl", "--config", "/etc/regctl/regctl.yaml", "certs", "obtain", "--root", "/opt/regctl", "--acme-directory", "https://acme.test/dir", "registry.example.com"}, "regctl certs obtain registry.example.com"},
	} {
		if got := shortCommand(tt.argv); got != tt.want {
			t.Errorf("shortCommand(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

// TestLive: the live line shows the latest output line and the time taken,
// rewritten in place and cleared on a terminal, repeated in a log; the
// command's output itself is not printed.
func TestLive(t *testing.T) {
	for _, tty := range []bool{false, true} {
		var out testenv.SyncBuffer
		start := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		now := start
		l := &Live{Out: &out, TTY: tty, Every: 5 * time.Millisecond, Tick: 5 * time.Millisecond, Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Second)
			return now
		}}
		c := l.Command([]string{"apt-get", "install", "-y", "docker.io"})
		c.Write([]byte("Reading package lists...\nUnpacking docker.io (26.1.5) ...\nSetting up do"))
		testenv.WaitFor(t, func() bool { return strings.Contains(out.String(), "Unpacking docker.io") })
		c.Done()
		got := out.String()
		if !strings.Contains(got, "      … apt-get install docker.io (") || strings.Contains(got, "Reading package lists") && !strings.Contains(got, "Unpacking") {
			t.Errorf("tty=%t: %q", tty, got)
		}
		if strings.Contains(got, "Setting up do") {
			t.Errorf("tty=%t: an unfinished line was shown: %q", tty, got)
		}
		if tty != strings.HasSuffix(got, "\r\033[K") {
			t.Errorf("tty=%t: line cleared at the end = %t: %q", tty, !tty, got)
		}
		if !tty && strings.Contains(got, "\r") {
			t.Errorf("a log got terminal control characters: %q", got)
		}
	}
}

// TestExecHostLiveFailure: with a live line, a failing command's output is
// not streamed, so it appears once: in the error, which holds its end.
func TestExecHostLiveFailure(t *testing.T) {
	var out testenv.SyncBuffer
	h := NewExecHost(t.TempDir(), nil)
	h.Live = &Live{Out: &out}
	err := h.Run(t.Context(), "sh", "-c", "echo step one; echo 'E: Unable to locate package docker-compose-v2' >&2; exit 100")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "E: Unable to locate package docker-compose-v2") || !strings.Contains(msg, "exit status 100") {
		t.Errorf("error %q lacks the output's end", msg)
	}
	if strings.Contains(out.String(), "Unable to locate") {
		t.Errorf("the output was printed as well as put in the error: %q", out.String())
	}
}
