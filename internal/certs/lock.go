package certs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regctl/regctl/internal/flock"
)

// ErrLocked means another process holds the lock.
var ErrLocked = errors.New("another regctl certs run holds the lock")

// Lock is an exclusive advisory lock (flock(2)) on a file. Two Locks on
// the same path exclude each other within a process as well as across
// processes, and the kernel drops the lock when the process dies.
type Lock struct {
	l    *flock.Lock
	path string
}

// TryLock takes the lock on path (created with mode 0600, its directory
// with 0700) or returns an error wrapping ErrLocked at once.
func TryLock(path string) (*Lock, error) {
	l, err := flock.Try(path, flock.Options{DirPerm: 0o700, Perm: 0o600})
	if errors.Is(err, flock.ErrLocked) {
		err = ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{l: l, path: path}, nil
}

// AcquireLock takes the lock on path, polling every poll until it is free
// or ctx ends; then the error wraps ErrLocked and ctx's error.
func AcquireLock(ctx context.Context, path string, poll time.Duration) (*Lock, error) {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		l, err := TryLock(path)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (waited until %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// Release drops the lock. Releasing twice does nothing.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	// Closing the file releases the flock.
	if err := l.l.Release(); err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}
