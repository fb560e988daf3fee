package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// attachTTY makes a new pseudo-terminal cmd's stdin and controlling
// terminal (in a session of its own) and types input into it. What the
// terminal echoes back is read and dropped. The returned function closes
// both ends once cmd has ended.
func attachTTY(cmd *exec.Cmd, input string) (func(), error) {
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open a pseudo-terminal: %w", err)
	}
	fd := int(ptm.Fd())
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0)
	}
	if err != nil {
		ptm.Close()
		return nil, fmt.Errorf("unlock the pseudo-terminal: %w", err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		return nil, fmt.Errorf("open the pseudo-terminal's /dev/pts/%d: %w", n, err)
	}
	cmd.Stdin = pts
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	go func() { _, _ = io.Copy(io.Discard, ptm) }() // the echo, which may hold input
	if _, err := io.WriteString(ptm, input); err != nil {
		pts.Close()
		ptm.Close()
		return nil, fmt.Errorf("type into the pseudo-terminal: %w", err)
	}
	return func() {
		pts.Close()
		ptm.Close()
	}, nil
}
