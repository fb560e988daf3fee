package certstest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// proc is a server process started by startProc.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	cancel  context.CancelFunc
}

// startProc starts bin with args and extra environment env. Its output
// goes to a log file, printed (its end) if the test fails. At cleanup it
// gets sig (SIGKILL after 10s).
func startProc(t testing.TB, name string, sig syscall.Signal, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(sig) }
	cmd.WaitDelay = 10 * time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("started %s (pid %d): %s %v, log %s", name, cmd.Process.Pid, bin, args, logPath)
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), cancel: cancel}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- end of %s log (%s):\n%s", name, logPath, p.log(8<<10))
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) stop() {
	p.cancel()
	<-p.done
}

// log returns the last max bytes of the process's output (all if max <= 0).
func (p *proc) log(max int) string {
	b, _ := os.ReadFile(p.logPath)
	if max > 0 && len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
