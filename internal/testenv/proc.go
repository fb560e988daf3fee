package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StopTimeout is how long a process gets between SIGTERM and SIGKILL.
const StopTimeout = 10 * time.Second

// Proc is a server process started by Start.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // stdout and stderr of the process

	cancel context.CancelFunc
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done
}

// Start starts bin with args and extra environment env as a long-running
// server called name. Its stdout and stderr go to a log file; at cleanup the
// process gets SIGTERM (SIGKILL after StopTimeout), and if the test failed
// the end of the log is printed. A log containing a data race report (a
// binary built with -race) fails the test.
func Start(t testing.TB, name string, env []string, bin string, args ...string) *Proc {
	t.Helper()
	return StartSignal(t, name, syscall.SIGTERM, env, bin, args...)
}

// StartSignal is Start for a server that stops on another signal than
// SIGTERM (nginx stops gracefully on SIGQUIT).
func StartSignal(t testing.TB, name string, stop syscall.Signal, env []string, bin string, args ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	t.Logf("start %s: %s (log %s)", name, commandLine(bin, args), logPath)
	p, err := Launch(name, logPath, stop, env, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- log of %s (%s), last 16 KiB:\n%s", name, logPath, p.Log(16<<10))
		}
		if strings.Contains(p.Log(0), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race; see %s", name, logPath)
			if !t.Failed() {
				t.Logf("--- log of %s:\n%s", name, p.Log(64<<10))
			}
		}
	})
	return p
}

// Launch is Start without a test, for the benchmark: it starts bin, its
// output going to logPath; Stop sends it stop (SIGKILL after StopTimeout).
// On Linux the kernel kills it if this process dies, so none outlives its
// starter. The caller stops it.
func Launch(name, logPath string, stop syscall.Signal, env []string, bin string, args ...string) (*Proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(stop) }
	cmd.WaitDelay = StopTimeout
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, cancel: cancel, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's ID.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Stop sends SIGTERM, waits for the process to exit (SIGKILL after
// StopTimeout) and returns. Stopping a stopped process does nothing.
func (p *Proc) Stop() {
	p.cancel()
	<-p.done
}

// Wait waits for the process to exit by itself and returns Wait's result.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited, and if so how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Log returns the process's log, at most its last maxLen bytes (all if
// maxLen is 0).
func (p *Proc) Log(maxLen int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("[read log: %v]", err)
	}
	if maxLen > 0 && len(b) > maxLen {
		b = append([]byte("…"), b[len(b)-maxLen:]...)
	}
	return string(b)
}

// WaitReady polls check until it returns nil. It fails the test, printing
// the log, if the process exits first or timeout passes.
func (p *Proc) WaitReady(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	start := time.Now()
	if err := p.Ready(context.Background(), timeout, check); err != nil {
		t.Fatalf("%s not ready: %v\n--- log (%s):\n%s", p.Name, err, p.LogPath, p.Log(16<<10))
	}
	t.Logf("%s ready after %s", p.Name, time.Since(start).Round(time.Millisecond))
}

// Ready polls check every 100 ms until it returns nil. It returns an error
// if the process exits first, timeout passes or ctx ends.
func (p *Proc) Ready(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("exited: %v", err) //nolint:errorlint // err is nil when the process exited 0, and %w would print %!w(<nil>)
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DialCheck returns a readiness check that succeeds once addr accepts TCP
// connections.
func DialCheck(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// HTTPCheck returns a readiness check that succeeds once GET url answers
// with status want.
func HTTPCheck(url string, want int) func() error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, want)
		}
		return nil
	}
}
