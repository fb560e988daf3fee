// Package audit is `regctl audit`: reading the token server's audit log.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/token"
)

// NewCmdAudit builds `regctl audit`.
func NewCmdAudit(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the token server's audit log",
		Long: `Read the audit log that regctl serve --audit-log writes: one JSON object per
token decision (time, user, client_ip, user_agent, grant, service,
requested, granted, decided_by, result, status, reason), never a password
or token.`,
	}
	cmd.AddCommand(NewCmdTail(f, nil))
	return cmd
}

// TailOptions are `regctl audit tail`'s settings.
type TailOptions struct {
	IO     *cmdutil.IOStreams
	Loc    *time.Location
	File   string
	User   string
	Lines  int
	Follow bool
	// Poll is how often --follow checks the file for new lines.
	Poll time.Duration
}

// NewCmdTail builds `regctl audit tail`.
func NewCmdTail(f *cmdutil.Factory, runF func(context.Context, *TailOptions) error) *cobra.Command {
	opts := &TailOptions{IO: f.IO, Poll: 500 * time.Millisecond}
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
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Loc = f.Loc()
			if opts.File == "" {
				opts.File = f.Config.GetString("audit-log")
			}
			switch {
			case opts.File == "":
				return cmdutil.FlagErrorf("no audit log: pass --file FILE (the file given to regctl serve --audit-log)")
			case opts.File == "-":
				return cmdutil.FlagErrorf("the audit log goes to regctl serve's stdout (--audit-log -); pass --file FILE")
			case opts.Lines < 0:
				return cmdutil.FlagErrorf("-n %d: want 0 (all) or more", opts.Lines)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return tailRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.File, "file", "", "audit log file (default: the audit-log setting)")
	fl.StringVar(&opts.User, "user", "", "only decisions about this user")
	fl.IntVarP(&opts.Lines, "lines", "n", 10, "how many decisions to print first; 0 for all")
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing decisions as they are written")
	return cmd
}

func tailRun(ctx context.Context, o *TailOptions) error {
	tail := &token.AuditTail{File: o.File, User: o.User, Lines: o.Lines, Follow: o.Follow, Poll: o.Poll}
	skipped := 0 // lines printed on a terminal that are not records
	err := tail.Run(ctx, func(line []byte) error {
		if !o.IO.IsStdoutTTY() {
			_, err := fmt.Fprintf(o.IO.Out, "%s\n", line)
			return err
		}
		var rec token.AuditRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			skipped++
			return nil
		}
		_, err := fmt.Fprintln(o.IO.Out, formatAuditRecord(&rec, o.Loc))
		return err
	})
	if err != nil {
		return err
	}
	if n := tail.Skipped() + skipped; n > 0 {
		fmt.Fprintf(o.IO.ErrOut, "warning: skipped %d lines that are not audit records\n", n)
	}
	return nil
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
