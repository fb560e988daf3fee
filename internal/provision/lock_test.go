package provision

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockInit: a second LockInit on the same file fails at once with a
// message naming the file and the holder's PID, until the first releases.
func TestLockInit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "regctl-init.lock")
	first, err := LockInit(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q (%v), want this PID %d", b, err, os.Getpid())
	}

	_, err = LockInit(path)
	var le *InitLockedError
	if !errors.Is(err, ErrInitLocked) || !errors.As(err, &le) {
		t.Fatalf("second LockInit: %v, want ErrInitLocked", err)
	}
	if le.PID != os.Getpid() {
		t.Errorf("holder PID %d, want %d", le.PID, os.Getpid())
	}
	for _, want := range []string{"another regctl init is running", path, fmt.Sprintf("pid %d", os.Getpid()), "wait", "ps -fp"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}

	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if err := first.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	again, err := LockInit(path)
	if err != nil {
		t.Fatalf("LockInit after Release: %v", err)
	}
	again.Release()
}

func TestInitLockedErrorNoPID(t *testing.T) {
	msg := (&InitLockedError{Path: "/run/regctl-init.lock"}).Error()
	if !strings.Contains(msg, "/run/regctl-init.lock") || !strings.Contains(msg, "ps -C regctl") {
		t.Errorf("message: %s", msg)
	}
}

// TestLockInitSymlink: the lock file is never a symlink followed.
func TestLockInitSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "regctl-init.lock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if l, err := LockInit(link); err == nil {
		l.Release()
		t.Fatal("LockInit followed a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target changed: %q", b)
	}
}
