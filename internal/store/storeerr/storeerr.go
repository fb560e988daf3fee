// Package storeerr holds the error helpers the store backends share: an
// error whose message is one short line while it still unwraps to the
// store's sentinels and to the driver's error.
package storeerr

import (
	"fmt"
	"strings"

	"github.com/regctl/regctl/internal/store"
)

// opError is an error with a short, one-line message that still unwraps to
// the sentinel and to the driver's error, so errors.Is and errors.As see
// all of them while the message carries no driver dump.
type opError struct {
	msg  string
	errs []error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.errs }

// New returns an error with message msg that unwraps to errs.
func New(msg string, errs ...error) error {
	return &opError{msg: msg, errs: errs}
}

// Unavailable returns the error of operation op that could not reach the
// store: "op: store unavailable: cause", wrapping store.ErrUnavailable and
// errs.
func Unavailable(op, cause string, errs ...error) error {
	return New(fmt.Sprintf("%s: %v: %s", op, store.ErrUnavailable, cause),
		append([]error{store.ErrUnavailable}, errs...)...)
}

// maxCauseLen bounds the driver text quoted in an error message.
const maxCauseLen = 200

// OneLine flattens s to a single line of at most maxCauseLen bytes.
func OneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxCauseLen {
		s = s[:maxCauseLen] + "…"
	}
	return s
}
