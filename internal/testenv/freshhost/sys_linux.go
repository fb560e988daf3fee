//go:build linux

package freshhost

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// nspawnAttr makes the kernel kill systemd-nspawn (and so the container)
// when the test process dies.
func nspawnAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// cmdAttr puts a command in a process group of its own, so that a timeout
// kills all of it: the process group survives nsenter's setns, so this
// reaches the command inside the host too.
func cmdAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

func killGroup(pid int) error { return syscall.Kill(-pid, syscall.SIGKILL) }

// inNetns runs f on an OS thread switched into the network namespace
// bound at nsPath. Sockets f creates stay in that namespace. f must not
// start goroutines that create sockets.
func inNetns(nsPath string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := setns(target.Fd()); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", nsPath, err)
			return
		}
		ferr := f()
		if err := setns(orig.Fd()); err != nil {
			// The thread stays locked, so the runtime ends it with this
			// goroutine instead of reusing it in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("return from %s: %w", nsPath, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(fd uintptr) error { return unix.Setns(int(fd), unix.CLONE_NEWNET) }
