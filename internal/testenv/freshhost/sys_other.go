//go:build !linux

package freshhost

import (
	"errors"
	"syscall"
)

// Fresh hosts need Linux; RequireMachine skips everywhere else, so none of
// these run.

func nspawnAttr() *syscall.SysProcAttr { return nil }

func cmdAttr() *syscall.SysProcAttr { return nil }

func killGroup(int) error { return errors.ErrUnsupported }

func inNetns(string, func() error) error { return errors.ErrUnsupported }
