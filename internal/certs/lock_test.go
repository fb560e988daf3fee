package certs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs"
)

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", ".lock")
	l, err := certs.TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v", fi.Mode().Perm())
	}
	if _, err := certs.TryLock(path); !errors.Is(err, certs.ErrLocked) {
		t.Fatalf("second certs.TryLock: %v, want certs.ErrLocked", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := certs.AcquireLock(ctx, path, 10*time.Millisecond); !errors.Is(err, certs.ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("certs.AcquireLock while held: %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = l.Release()
	}()
	l2, err := certs.AcquireLock(context.Background(), path, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("certs.AcquireLock after release: %v", err)
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}
