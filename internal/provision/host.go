// Package provision turns a host into a regctl registry host: the ordered,
// idempotent steps of `regctl init`, the preflight checks before them, the
// generation of secrets and keys, and the synchronisation of rendered files
// with the disk (manifest, backups, hand-edit detection) behind `regctl
// render`.
//
// Every action that changes the host goes through Host, so that one
// constructor argument decides between doing it (ExecHost), printing it
// (DryRunHost) and recording it in a test (RecordingHost). Steps check
// before they act: a re-run does only what is missing.
package provision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Host is everything a step may do to the machine. Paths are absolute.
//
// Query runs a command that only reads state; it runs even in a dry run, so
// steps can check before they act. Run and RunInput change the host.
// ReadFile and Stat report fs.ErrNotExist for a missing file; Stat does not
// follow a final symlink. WriteFile replaces a file atomically (temporary
// file and rename) with exactly mode; the parent directory must exist.
// Mkdir creates a directory and its parents and sets its mode exactly.
type Host interface {
	Query(ctx context.Context, name string, args ...string) ([]byte, error)
	Run(ctx context.Context, name string, args ...string) error
	RunInput(ctx context.Context, stdin []byte, name string, args ...string) error
	ReadFile(path string) ([]byte, error)
	Stat(path string) (fs.FileInfo, error)
	WriteFile(path string, data []byte, mode fs.FileMode) error
	Mkdir(path string, mode fs.FileMode) error
	Chown(path string, uid, gid int) error
}

// Exists reports whether path exists on h.
func Exists(h Host, path string) (bool, error) {
	_, err := h.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// CmdError is a failed command with the end of its output.
type CmdError struct {
	Args   []string
	Output string // last part of stdout and stderr
	Err    error
}

func (e *CmdError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += "\n" + indent(out, "    ")
	}
	return msg
}

func (e *CmdError) Unwrap() error { return e.Err }

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// commandLine shows a command for people; arguments with spaces are
// quoted.
func commandLine(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$;&|<>*?()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
