package provision

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/regctl/regctl/internal/flock"
)

// InitLockPath is the lock `regctl init` holds while it runs. There is one
// per host, not per install root: the firewall, the fail2ban jail,
// /etc/regctl/store and the renewal timer are the host's. /run is writable
// by root only and emptied at boot.
const InitLockPath = "/run/regctl-init.lock"

// ErrInitLocked means another process holds the init lock.
var ErrInitLocked = errors.New("another regctl init is running")

// InitLockedError is LockInit's error when another process holds the lock.
type InitLockedError struct {
	Path string
	PID  int // the holder, as it wrote itself into the file; 0 if unknown
}

func (e *InitLockedError) Error() string {
	holder, check := "it", "`ps -C regctl -f`"
	if e.PID > 0 {
		holder = fmt.Sprintf("pid %d", e.PID)
		check = fmt.Sprintf("`ps -fp %d`", e.PID)
	}
	return fmt.Sprintf("%v (%s holds the lock %s): wait until it has finished and run init again (check with %s)",
		ErrInitLocked, holder, e.Path, check)
}

func (e *InitLockedError) Unwrap() error { return ErrInitLocked }

// InitLock is a held init lock: an exclusive flock(2) on its file, which
// the kernel drops when the process dies.
type InitLock struct {
	l *flock.Lock
}

// LockInit takes the init lock at path without waiting: when another
// process (or another InitLock in this one) holds it, the error is an
// *InitLockedError. The file keeps the holder's PID, for that message.
func LockInit(path string) (*InitLock, error) {
	l, err := flock.Try(path, flock.Options{DirPerm: 0o755, Perm: 0o644, NoFollow: true})
	if err != nil {
		if errors.Is(err, flock.ErrLocked) {
			e := &InitLockedError{Path: path}
			if b, rerr := os.ReadFile(path); rerr == nil {
				e.PID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			return nil, e
		}
		if _, ok := errors.AsType[*fs.PathError](err); ok {
			return nil, fmt.Errorf("init lock: %w", err)
		}
		return nil, fmt.Errorf("init lock %s: %w", path, err)
	}
	// Best effort: only the message of a second init reads it.
	if f := l.File(); f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &InitLock{l: l}, nil
}

// Release drops the lock; releasing twice does nothing.
func (l *InitLock) Release() error {
	if l == nil {
		return nil
	}
	return l.l.Release()
}
