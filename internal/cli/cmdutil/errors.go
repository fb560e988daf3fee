// Package cmdutil is what regctl's command packages share: errors that
// become exit codes, positional-argument checks, the factory, I/O streams,
// output formats, shared flag parsing and shell completion. It imports no
// command package.
package cmdutil

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// FlagError is a usage error: the command's usage is worth showing.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// FlagErrorf builds a FlagError.
func FlagErrorf(format string, args ...any) error {
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

// ExitCodeError ends the command with a specific code, already reported.
type ExitCodeError struct{ Code int }

func (e *ExitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// UsageArgs makes a positional-argument check's error a FlagError, so that
// the usage hint follows it and regctl exits with ExitUsage.
func UsageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		var fe *FlagError
		if err == nil || errors.As(err, &fe) {
			return err
		}
		return &FlagError{Err: err}
	}
}

// NoArgs and the other positional-argument checks below fail with a
// FlagError; cobra's own fail with plain errors.
var NoArgs = UsageArgs(cobra.NoArgs)

// ExactArgs is cobra.ExactArgs failing with a FlagError.
func ExactArgs(n int) cobra.PositionalArgs { return UsageArgs(cobra.ExactArgs(n)) }

// MinimumNArgs is cobra.MinimumNArgs failing with a FlagError.
func MinimumNArgs(n int) cobra.PositionalArgs { return UsageArgs(cobra.MinimumNArgs(n)) }

// MaximumNArgs is cobra.MaximumNArgs failing with a FlagError.
func MaximumNArgs(n int) cobra.PositionalArgs { return UsageArgs(cobra.MaximumNArgs(n)) }

// ExitCode is the exit code for a command's error: what Execute returns.
func ExitCode(err error) int {
	var fe *FlagError
	var ee *ExitCodeError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrSilent):
		return ExitError
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &fe):
		return ExitUsage
	}
	return ExitError
}

// Execute runs the command tree under root on args, reports its error on
// ErrOut and returns the exit code: the one place errors become exit codes.
func Execute(ctx context.Context, root *cobra.Command, ios *IOStreams, args []string) int {
	root.SetArgs(args)
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		if _, _, ferr := root.Find(args); ferr != nil {
			// The arguments name no command: cobra's "unknown command".
			err = &FlagError{Err: err}
		}
	}
	var fe *FlagError
	var ee *ExitCodeError
	switch {
	case err == nil, errors.Is(err, ErrSilent), errors.As(err, &ee):
		// Already reported.
	case errors.As(err, &fe):
		fmt.Fprintf(ios.ErrOut, "error: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(ios.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	default:
		fmt.Fprintf(ios.ErrOut, "error: %v\n", err)
	}
	return ExitCode(err)
}
