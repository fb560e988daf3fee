// Package flock takes exclusive advisory locks, flock(2), on files. Two
// locks on one path exclude each other within a process as well as across
// processes, and the kernel drops a lock when its process dies.
package flock

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrLocked means another holder has the lock.
var ErrLocked = errors.New("locked by another holder")

// Options say how Try creates the lock file and its directory.
type Options struct {
	DirPerm  os.FileMode // of the directory, if Try creates it
	Perm     os.FileMode // of the file, if Try creates it
	NoFollow bool        // refuse to open a symlink (O_NOFOLLOW)
}

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Try takes the lock on path without waiting, creating the file and its
// directory as o says. When another holder has it the error is ErrLocked.
// Errors from creating the directory or opening the file are the os
// package's (*fs.PathError, naming the file); an error of flock(2) itself
// is returned as it is.
func Try(path string, o Options) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), o.DirPerm); err != nil {
		return nil, err
	}
	flag := os.O_RDWR | os.O_CREATE
	if o.NoFollow {
		flag |= unix.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flag, o.Perm)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return &Lock{f: f}, nil
}

// File is the open lock file, for a holder that writes into it.
func (l *Lock) File() *os.File { return l.f }

// Release drops the lock by closing the file. Releasing twice, or a nil
// Lock, does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	return f.Close()
}
