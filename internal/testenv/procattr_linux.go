package testenv

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel kill cmd's process when this one dies
// (say, at a go test -timeout panic), so none outlives it. It does nothing
// on systems other than Linux.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
