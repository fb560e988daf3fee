//go:build !linux

package testenv

import (
	"errors"
	"os/exec"
)

// attachTTY is Linux only.
func attachTTY(*exec.Cmd, string) (func(), error) {
	return nil, errors.New("RunTTY needs Linux")
}
