package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/token"
)

// NewCmdAudit builds `regctl audit`.
func NewCmdAudit(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the token server's audit log",
		Long: `Read the audit log that regctl serve --audit-log writes: one JSON object per
token decision (time, user, client_ip, user_agent, grant, service,
requested, granted, decided_by, result, status, reason), never a password
or token.`,
	}
	cmd.AddCommand(NewCmdAuditTail(f, nil))
	return cmd
}

// AuditTailOptions are `regctl audit tail`'s settings.
type AuditTailOptions struct {
	IO     *IOStreams
	Loc    *time.Location
	File   string
	User   string
	Lines  int
	Follow bool
	// Poll is how often --follow checks the file for new lines.
	Poll time.Duration
}

// NewCmdAuditTail builds `regctl audit tail`.
func NewCmdAuditTail(f *Factory, runF func(context.Context, *AuditTailOptions) error) *cobra.Command {
	opts := &AuditTailOptions{IO: f.IO, Poll: 500 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the last decisions of the audit log, optionally of one user",
		Long: `Print the last -n decisions of the audit log (all with -n 0), oldest first,
and with --follow keep printing new ones as they are written (a rotated or
truncated file is followed from its start).

The file is --file, or else the audit-log setting regctl serve uses (from
--config or REGCTL_AUDIT_LOG). On a terminal each decision is one readable
line; otherwise the JSON lines are printed as they are, for jq.`,
		Example: `  regctl audit tail --file /var/log/regctl/audit.log --user waldi -n 20
  regctl audit tail --file /opt/regctl/logs/regctl/audit.log --user NAME --follow
  regctl audit tail --file audit.log -n 0 | jq 'select(.result == "unauthorized")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Loc = f.loc()
			if opts.File == "" {
				opts.File = f.Config.GetString("audit-log")
			}
			switch {
			case opts.File == "":
				return flagErrorf("no audit log: pass --file FILE (the file given to regctl serve --audit-log)")
			case opts.File == "-":
				return flagErrorf("the audit log goes to regctl serve's stdout (--audit-log -); pass --file FILE")
			case opts.Lines < 0:
				return flagErrorf("-n %d: want 0 (all) or more", opts.Lines)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return auditTailRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.File, "file", "", "audit log file (default: the audit-log setting)")
	fl.StringVar(&opts.User, "user", "", "only decisions about this user")
	fl.IntVarP(&opts.Lines, "lines", "n", 10, "how many decisions to print first; 0 for all")
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing decisions as they are written")
	return cmd
}

func auditTailRun(ctx context.Context, o *AuditTailOptions) error {
	fh, err := os.Open(o.File)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer func() { fh.Close() }()
	t := &auditTail{o: o}
	// The last -n matching lines, read forwards through a ring.
	var ring [][]byte
	if o.Lines > 0 {
		ring = make([][]byte, 0, o.Lines)
	}
	next := 0
	off, err := t.scan(fh, 0, func(line []byte) {
		if o.Lines == 0 {
			ring = append(ring, line)
			return
		}
		if len(ring) < o.Lines {
			ring = append(ring, line)
			return
		}
		ring[next] = line
		next = (next + 1) % o.Lines
	})
	if err != nil {
		return fmt.Errorf("read audit log %s: %w", o.File, err)
	}
	for i := range ring {
		if err := t.print(ring[(next+i)%len(ring)]); err != nil {
			return err
		}
	}
	if !o.Follow {
		t.warnSkipped()
		return nil
	}
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.warnSkipped()
			return nil
		case <-tick.C:
		}
		// Rotated (a new file at the path) or truncated: start over.
		if st, err := os.Stat(o.File); err == nil {
			cur, cerr := fh.Stat()
			switch {
			case cerr == nil && !os.SameFile(st, cur):
				if nf, err := os.Open(o.File); err == nil {
					fh.Close()
					fh, off = nf, 0
				}
			case st.Size() < off:
				off = 0
			}
		}
		if off, err = t.scan(fh, off, func(line []byte) { _ = t.print(line) }); err != nil {
			return fmt.Errorf("read audit log %s: %w", o.File, err)
		}
		if t.err != nil {
			return t.err
		}
	}
}

// auditTail filters and prints audit lines.
type auditTail struct {
	o       *AuditTailOptions
	skipped int   // lines that are not audit records
	err     error // the first write error
}

// scan reads fh from off to its end and calls emit for each complete line
// about the requested user; it returns the offset after the last complete
// line, where the next scan starts (an unfinished line is read again).
func (t *auditTail) scan(fh *os.File, off int64, emit func([]byte)) (int64, error) {
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
func (t *auditTail) matches(line []byte) bool {
	if line[0] != '{' || line[len(line)-1] != '}' {
		t.skipped++
		return false
	}
	if t.o.User == "" {
		return true
	}
	// Cheap test first: most lines are about someone else.
	quoted, _ := json.Marshal(t.o.User)
	if !bytes.Contains(line, quoted) {
		return false
	}
	var rec token.AuditRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		t.skipped++
		return false
	}
	return rec.User == t.o.User
}

func (t *auditTail) print(line []byte) error {
	if t.err != nil {
		return t.err
	}
	out := t.o.IO.Out
	if !t.o.IO.IsStdoutTTY() {
		_, t.err = fmt.Fprintf(out, "%s\n", line)
		return t.err
	}
	var rec token.AuditRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		t.skipped++
		return nil
	}
	_, t.err = fmt.Fprintln(out, formatAuditRecord(&rec, t.o.Loc))
	return t.err
}

func (t *auditTail) warnSkipped() {
	if t.skipped > 0 {
		fmt.Fprintf(t.o.IO.ErrOut, "warning: skipped %d lines that are not audit records\n", t.skipped)
	}
}

// formatAuditRecord is one decision as a line for people:
//
//	2026-11-29T12:00:00Z issued waldi 192.0.2.1 basic: repository:test/app:pull,push → repository:test/app:pull,push (rule 10)
//	2026-11-29T12:00:01Z unauthorized waldi 192.0.2.1 basic: wrong password
func formatAuditRecord(r *token.AuditRecord, loc *time.Location) string {
	user := printable(r.User)
	if r.User == "" {
		user = "(anonymous)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s %s:", r.Time.In(loc).Format(time.RFC3339), printable(r.Result), user,
		printable(r.ClientIP), printable(r.Grant))
	if r.Status != 200 {
		fmt.Fprintf(&b, " %s", strings.Map(func(r rune) rune {
			if unicode.IsPrint(r) {
				return r
			}
			return '?'
		}, r.Reason))
		return b.String()
	}
	req, granted := printable(strings.Join(r.Requested, " ")), printable(strings.Join(r.Granted, " "))
	if req == "" {
		req = "(no scope)"
	}
	if granted == "" {
		granted = "(nothing)"
	}
	fmt.Fprintf(&b, " %s → %s", req, granted)
	var by []string
	for _, d := range r.DecidedBy {
		var parts []string
		if d.Rule != nil {
			parts = append(parts, fmt.Sprintf("rule %d", *d.Rule))
		}
		for _, g := range d.Grants {
			parts = append(parts, "grant "+g)
		}
		if len(parts) == 0 {
			parts = append(parts, "no rule or grant")
		}
		by = append(by, printable(d.Scope+": "+strings.Join(parts, ", ")))
	}
	if len(by) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(by, "; "))
	}
	return b.String()
}

// printable quotes a value that holds anything but printable characters, so
// a user name chosen by a client cannot send escape sequences to the
// terminal.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
