package token

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// AuditTail reads the audit log AuditLog writes: the last Lines records
// (all with 0) about User (everyone when ""), then, with Follow, the
// records written after them, following a rotated or truncated file from
// its start.
type AuditTail struct {
	File   string
	User   string
	Lines  int
	Follow bool
	// Poll is how often Follow checks the file for new lines.
	Poll time.Duration

	skipped int   // lines that are not audit records
	err     error // the first error emit returned
}

// Skipped is how many lines were not audit records.
func (t *AuditTail) Skipped() int { return t.skipped }

// Run calls emit with each record's line (without its newline), oldest
// first, until the last Lines are done, or with Follow until ctx ends. It
// stops at the first error emit returns, and returns it.
func (t *AuditTail) Run(ctx context.Context, emit func(line []byte) error) error {
	fh, err := os.Open(t.File)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer func() { fh.Close() }()
	// The last -n matching lines, read forwards through a ring.
	var ring [][]byte
	if t.Lines > 0 {
		ring = make([][]byte, 0, t.Lines)
	}
	next := 0
	off, err := t.scan(fh, 0, func(line []byte) {
		if t.Lines == 0 {
			ring = append(ring, line)
			return
		}
		if len(ring) < t.Lines {
			ring = append(ring, line)
			return
		}
		ring[next] = line
		next = (next + 1) % t.Lines
	})
	if err != nil {
		return fmt.Errorf("read audit log %s: %w", t.File, err)
	}
	for i := range ring {
		if err := emit(ring[(next+i)%len(ring)]); err != nil {
			return err
		}
	}
	if !t.Follow {
		return nil
	}
	tick := time.NewTicker(t.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		// Rotated (a new file at the path) or truncated: start over.
		if st, err := os.Stat(t.File); err == nil {
			cur, cerr := fh.Stat()
			switch {
			case cerr == nil && !os.SameFile(st, cur):
				if nf, err := os.Open(t.File); err == nil {
					fh.Close()
					fh, off = nf, 0
				}
			case st.Size() < off:
				off = 0
			}
		}
		if off, err = t.scan(fh, off, func(line []byte) {
			if t.err == nil {
				t.err = emit(line)
			}
		}); err != nil {
			return fmt.Errorf("read audit log %s: %w", t.File, err)
		}
		if t.err != nil {
			return t.err
		}
	}
}

// scan reads fh from off to its end and calls emit for each complete line
// about the requested user; it returns the offset after the last complete
// line, where the next scan starts (an unfinished line is read again).
func (t *AuditTail) scan(fh *os.File, off int64, emit func([]byte)) (int64, error) {
	if _, err := fh.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	r := bufio.NewReaderSize(fh, 64<<10)
	var partial []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			partial = append(partial, chunk...)
			continue
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
		line := append(partial, chunk...) // a copy: chunk is the reader's buffer
		partial = nil
		off += int64(len(line))
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 && t.matches(line) {
			emit(line)
		}
	}
}

// matches reports whether line is a record about the requested user.
func (t *AuditTail) matches(line []byte) bool {
	if line[0] != '{' || line[len(line)-1] != '}' {
		t.skipped++
		return false
	}
	if t.User == "" {
		return true
	}
	// Cheap test first: most lines are about someone else.
	quoted, _ := json.Marshal(t.User)
	if !bytes.Contains(line, quoted) {
		return false
	}
	var rec AuditRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		t.skipped++
		return false
	}
	return rec.User == t.User
}
