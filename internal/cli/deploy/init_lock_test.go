package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/provision"
)

// lockInitWith is provInitWith with the init lock at lock.
func lockInitWith(sys provision.System, lock string) func(f *cmdutil.Factory) *cobra.Command {
	return func(f *cmdutil.Factory) *cobra.Command {
		return NewCmdInit(f, func(ctx context.Context, o *InitOptions) error {
			o.System = sys
			o.Env = provFakeEnv
			o.Host = func(root string) provision.Host { return provQueryless{provision.NewExecHost(root, nil)} }
			o.LockPath = lock
			return initRun(ctx, o)
		})
	}
}

// TestInitLockHeld: while another process holds the init lock, init stops
// before preflight, naming the lock and its holder; a dry run still runs.
func TestInitLockHeld(t *testing.T) {
	p := provExample(t, "")
	lock := filepath.Join(t.TempDir(), "regctl-init.lock")
	held, err := provision.LockInit(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	root := filepath.Join(t.TempDir(), "scratch")
	code, _, stderr := provCmd(t, []string{"init", "--config", p, "--root", root, "--backend", "sqlite", "--password-stdin"}, lockInitWith(provSystem(), lock))
	if code == 0 {
		t.Fatalf("init ran while the lock was held:\n%s", stderr)
	}
	for _, want := range []string{"another regctl init is running", lock, "wait until it has finished"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("message lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "Preflight:") {
		t.Errorf("preflight ran while the lock was held:\n%s", stderr)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("init created %s while the lock was held", root)
	}

	code, _, stderr = provCmd(t, []string{"init", "--config", p, "--root", root, "--backend", "sqlite", "--dry-run"}, lockInitWith(provSystem(), lock))
	if code != 0 || !strings.Contains(stderr, "Dry run complete") {
		t.Errorf("dry run while the lock was held: exit %d\n%s", code, stderr)
	}
}

// TestInitLockTaken: init holds the lock during preflight (a second taker
// is refused then) and releases it when it returns.
func TestInitLockTaken(t *testing.T) {
	p := provExample(t, "")
	lock := filepath.Join(t.TempDir(), "regctl-init.lock")
	sys := provSystem()
	probed := false
	sys.PortFree = func(int) error {
		if !probed {
			probed = true
			if l, err := provision.LockInit(lock); !errors.Is(err, provision.ErrInitLocked) {
				l.Release()
				t.Errorf("during preflight, LockInit: %v, want ErrInitLocked", err)
			}
		}
		return errors.New("address already in use") // preflight fails: no step runs
	}
	root := filepath.Join(t.TempDir(), "scratch")
	code, _, stderr := provCmd(t, []string{"init", "--config", p, "--root", root, "--backend", "sqlite", "--password-stdin"}, lockInitWith(sys, lock))
	if code == 0 || !strings.Contains(stderr, "preflight checks failed") {
		t.Fatalf("exit %d, want preflight to fail:\n%s", code, stderr)
	}
	if !probed {
		t.Fatal("preflight did not probe the ports")
	}
	l, err := provision.LockInit(lock)
	if err != nil {
		t.Fatalf("the lock was not released: %v", err)
	}
	l.Release()
}

// TestInitLockNotRoot: a user who cannot create the lock gets preflight's
// "run it as root", not an error about the lock.
func TestInitLockNotRoot(t *testing.T) {
	p := provExample(t, "")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sys := provSystem()
	sys.EUID = func() int { return 1000 }
	root := filepath.Join(t.TempDir(), "scratch")
	code, _, stderr := provCmd(t, []string{"init", "--config", p, "--root", root, "--backend", "sqlite", "--password-stdin"}, lockInitWith(sys, filepath.Join(file, "regctl-init.lock")))
	if code == 0 || !strings.Contains(stderr, "sudo regctl init") || strings.Contains(stderr, "init lock") {
		t.Errorf("exit %d, want preflight's root check:\n%s", code, stderr)
	}
}
