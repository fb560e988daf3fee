// Package redact keeps secret values out of what regctl prints. A Set
// holds every secret a command knows: those regctl.yaml holds and those
// regctl generates. It masks each one in every spelling that the rendered
// files, URLs, diffs and messages may use.
//
// The CLI builds one Set per command and applies it where output leaves
// regctl: its output streams (Writer), the error it returns (Error), and
// the diffs provision prints (Bytes).
package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Mask is printed in place of a secret.
const Mask = "<redacted>"

// MinLen is the shortest value Add accepts. Masking a value of one to
// three characters would mangle unrelated output, and where the masks fell
// would give the value away; such a value protects nothing in the first
// place.
const MinLen = 4

// Set is a set of secrets. Its methods are safe for concurrent use. The
// zero value is an empty set; a nil *Set masks nothing.
type Set struct {
	mu    sync.RWMutex
	forms map[string]struct{}
	// sorted and r are built from forms when first needed after a change.
	sorted []string // longest first
	r      *strings.Replacer
}

// Add adds values to the set, each in all its Forms. Empty values and
// values shorter than MinLen are ignored. A value of several lines is also
// added line by line (except PEM armour lines and lines shorter than
// MinLen). So a private key stays masked when it is printed one line at a
// time behind a prefix, as in a diff.
func (s *Set) Add(values ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forms == nil {
		s.forms = map[string]struct{}{}
	}
	add := func(v string) {
		if len(v) < MinLen {
			return
		}
		for _, f := range Forms(v) {
			if _, ok := s.forms[f]; !ok {
				s.forms[f] = struct{}{}
				s.sorted, s.r = nil, nil
			}
		}
	}
	for _, v := range values {
		add(v)
		if !strings.Contains(v, "\n") {
			continue
		}
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "-----") {
				add(line)
			}
		}
	}
}

var percentHex = regexp.MustCompile(`%[0-9A-F]{2}`)

// Forms returns the spellings of v that a Set masks: v itself; the body
// of a JSON string (with Go's HTML escaping of <, > and &, and without
// it), which is also YAML's double-quoted form and what the templates'
// q function writes; the body of a Go-quoted string (%q in messages); the
// body of a YAML single-quoted string; the body of a shell single-quoted
// word (as provision prints commands); and v percent-encoded as a query
// value, a path segment, and a URL's user name or password, each with
// upper- and lowercase hex digits.
func Forms(v string) []string {
	goq := strconv.Quote(v)
	forms := []string{
		v,
		jsonBody(v, true),
		jsonBody(v, false),
		goq[1 : len(goq)-1],
		strings.ReplaceAll(v, "'", "''"),
		strings.ReplaceAll(v, "'", `'\''`),
	}
	for _, p := range []string{
		url.QueryEscape(v),
		url.PathEscape(v),
		strings.TrimPrefix(url.UserPassword("", v).String(), ":"),
		url.User(v).String(),
	} {
		forms = append(forms, p, percentHex.ReplaceAllStringFunc(p, strings.ToLower))
	}
	slices.Sort(forms)
	return slices.Compact(forms)
}

func jsonBody(v string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(v) // a string always encodes
	q := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return string(q[1 : len(q)-1])
}

// replacer returns the replacer and the forms, longest first, rebuilding
// them after a change.
func (s *Set) replacer() (*strings.Replacer, []string) {
	s.mu.RLock()
	r, sorted := s.r, s.sorted
	s.mu.RUnlock()
	if r != nil || s.forms == nil {
		return r, sorted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r == nil {
		s.sorted = make([]string, 0, len(s.forms))
		for f := range s.forms {
			s.sorted = append(s.sorted, f)
		}
		// Longest first: strings.Replacer prefers the earlier of two
		// matches at one position, so a secret that contains another is
		// masked whole.
		slices.SortFunc(s.sorted, func(a, b string) int {
			if len(a) != len(b) {
				return len(b) - len(a)
			}
			return strings.Compare(a, b)
		})
		pairs := make([]string, 0, 2*len(s.sorted))
		for _, f := range s.sorted {
			pairs = append(pairs, f, Mask)
		}
		s.r = strings.NewReplacer(pairs...)
	}
	return s.r, s.sorted
}

// String returns x with every form of every secret masked.
func (s *Set) String(x string) string {
	if s == nil {
		return x
	}
	r, _ := s.replacer()
	if r == nil {
		return x
	}
	return r.Replace(x)
}

// Bytes returns b with every form of every secret masked. It returns b
// itself when there is nothing to mask.
func (s *Set) Bytes(b []byte) []byte {
	if s == nil {
		return b
	}
	r, _ := s.replacer()
	if r == nil {
		return b
	}
	out := r.Replace(string(b))
	if len(out) == len(b) && out == string(b) {
		return b
	}
	return []byte(out)
}

// Error returns err with its message masked. The result wraps err, so
// errors.Is and errors.As still see what err wraps. An error with nothing to mask is
// returned as it is.
func (s *Set) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := s.String(msg); red != msg {
		return &maskedError{msg: red, err: err}
	}
	return err
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// Writer returns a writer that masks the secrets in what it passes to w.
// Secrets added later are masked from then on. Call Flush when done.
func (s *Set) Writer(w io.Writer) *Writer {
	return &Writer{set: s, w: w}
}

// Writer masks secrets on their way to an underlying writer. A secret
// split across two writes is still masked: Writer holds back the end of
// an unfinished line for as long as it could be the start of a secret, and
// writes everything else at once. Its methods are safe for concurrent use.
type Writer struct {
	set *Set

	mu   sync.Mutex
	w    io.Writer
	held []byte
}

// Write masks p and writes it, except for a held-back end.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := w.set.Bytes(append(w.held, p...))
	n := len(buf) - w.set.partial(buf)
	w.held = bytes.Clone(buf[n:])
	if n == 0 {
		return len(p), nil
	}
	if _, err := w.w.Write(buf[:n]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what Write held back.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.held) == 0 {
		return nil
	}
	buf := w.set.Bytes(w.held)
	w.held = nil
	_, err := w.w.Write(buf)
	return err
}

// partial returns the length of the longest end of b, within its last
// line, that is the start of a form but not a whole one.
func (s *Set) partial(b []byte) int {
	if s == nil {
		return 0
	}
	_, forms := s.replacer()
	line := b[bytes.LastIndexByte(b, '\n')+1:]
	best := 0
	for _, f := range forms {
		// Only the starts longer than best can win; try each position
		// where f's first byte occurs.
		from := max(0, len(line)-len(f)+1)
		for i := from; i < len(line)-best; i++ {
			if line[i] == f[0] && strings.HasPrefix(f, string(line[i:])) {
				best = len(line) - i
				break
			}
		}
	}
	return best
}
