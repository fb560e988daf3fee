package cmdutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IOStreams are a command's standard streams. Data goes to Out, messages
// to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY     bool
	stdoutTTY    bool
	stderrTTY    bool
	colorEnabled bool
	stdinFD      int
	// readPassword reads one line without echo; tests replace it.
	readPassword func() ([]byte, error)
	// inLines buffers In for line prompts, so that several prompts in a
	// row do not lose what a buffered read took ahead.
	inLines *bufio.Reader
}

// System returns the process's streams.
func System() *IOStreams {
	s := &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
		stdinFD:   int(os.Stdin.Fd()),
	}
	s.colorEnabled = s.stdoutTTY && colorAllowed(os.Getenv)
	return s
}

// colorAllowed honours NO_COLOR (https://no-color.org) and TERM=dumb.
func colorAllowed(getenv func(string) string) bool {
	return getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// Test returns buffer-backed streams, not TTYs.
func Test() (ios *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut, stdinFD: -1}, in, out, errOut
}

// IsStderrTTY reports whether standard error (where progress goes) is a
// terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// IsStdinTTY reports whether standard input is a terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// IsStdoutTTY reports whether standard output is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// ColorEnabled reports whether output may carry ANSI colours: only when
// standard output is a terminal (and NO_COLOR is unset).
func (s *IOStreams) ColorEnabled() bool { return s.colorEnabled }

// CanPrompt reports whether the user can answer a question: standard input
// is a terminal.
func (s *IOStreams) CanPrompt() bool { return s.stdinTTY }

// SetStdinTTY lets tests pretend that standard input is a terminal.
func (s *IOStreams) SetStdinTTY(v bool) { s.stdinTTY = v }

// SetStdoutTTY lets tests pretend that standard output is a terminal.
func (s *IOStreams) SetStdoutTTY(v bool) { s.stdoutTTY = v }

// SetColorEnabled lets tests turn colours on or off.
func (s *IOStreams) SetColorEnabled(v bool) { s.colorEnabled = v }

// SetReadPassword replaces the terminal read of ReadPassword, for tests.
func (s *IOStreams) SetReadPassword(fn func() ([]byte, error)) { s.readPassword = fn }

// ResetInput drops what line prompts buffered from In, for a test that
// refills In between commands.
func (s *IOStreams) ResetInput() { s.inLines = nil }

// ReadPassword reads a line from the terminal without echo.
func (s *IOStreams) ReadPassword() ([]byte, error) {
	if s.readPassword != nil {
		return s.readPassword()
	}
	return term.ReadPassword(s.stdinFD)
}

// errNoAnswer: standard input ended before the user answered.
var errNoAnswer = errors.New("no answer (standard input closed)")

// Confirm asks a yes/no question on ErrOut and reads the answer from In.
// Only "y" and "yes" (any case) confirm.
func (s *IOStreams) Confirm(question string) (bool, error) {
	fmt.Fprintf(s.ErrOut, "%s [y/N] ", question)
	if s.inLines == nil {
		s.inLines = bufio.NewReader(s.In)
	}
	line, err := s.inLines.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		fmt.Fprintln(s.ErrOut)
		return false, errNoAnswer
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
