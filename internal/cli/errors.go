package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
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

// exitError ends the command with a specific code, already reported.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageArgs makes a positional-argument check's error a FlagError, so that
// the usage hint follows it and regctl exits with ExitUsage.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		var fe *FlagError
		if err == nil || errors.As(err, &fe) {
			return err
		}
		return &FlagError{Err: err}
	}
}

// Positional-argument checks that fail with a FlagError; cobra's own fail
// with plain errors.
var noArgs = usageArgs(cobra.NoArgs)

func exactArgs(n int) cobra.PositionalArgs    { return usageArgs(cobra.ExactArgs(n)) }
func minimumNArgs(n int) cobra.PositionalArgs { return usageArgs(cobra.MinimumNArgs(n)) }
func maximumNArgs(n int) cobra.PositionalArgs { return usageArgs(cobra.MaximumNArgs(n)) }

// exitCode is the exit code for a command's error: what Execute returns.
func exitCode(err error) int {
	var fe *FlagError
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrSilent):
		return ExitError
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &fe):
		return ExitUsage
	}
	return ExitError
}
