package cli

import (
	"errors"
	"fmt"
)

// FlagError is a usage error: the command's usage is worth showing.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// flagErrorf builds a FlagError.
func flagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// ErrSilent means the command already reported the failure; exit 1 without
// printing anything more.
var ErrSilent = errors.New("silent error")

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)
