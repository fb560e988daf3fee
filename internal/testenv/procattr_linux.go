package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill a server when the test binary dies
// (say, at a go test -timeout panic), so none outlives it.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
