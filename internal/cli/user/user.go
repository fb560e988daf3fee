// Package user is `regctl user`: adding users and managing their passwords,
// grants, labels, expiry and state.
package user

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/passwd"
	"github.com/regctl/regctl/internal/store"
)

// NewCmdUser builds `regctl user`.
func NewCmdUser(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users, their labels, grants and expiry",
		Long: `Manage the accounts the token server authenticates: passwords (bcrypt),
labels (which the rules' ${labels:KEY} variables read), per-user grants and
expiry dates. The running token server applies every change within its
--reload-interval, without a restart.`,
		Example: `  printf '%s\n' "$PASSWORD" | regctl user add waldi --password-stdin --expires 90d
  regctl user grant waldi 'team/*' --actions pull,push
  regctl user list --expiring 7d`,
	}
	cmd.AddCommand(
		NewCmdAdd(f, nil),
		NewCmdList(f, nil),
		NewCmdShow(f, nil),
		NewCmdPasswd(f, nil),
		NewCmdExpire(f, nil),
		NewCmdDisable(f, nil),
		NewCmdEnable(f, nil),
		NewCmdDelete(f, nil),
		NewCmdLabel(f),
		NewCmdGrant(f, nil),
		NewCmdRevoke(f, nil),
	)
	return cmd
}

// passwordSource holds the mutually exclusive password flags.
type passwordSource struct {
	stdin bool
	file  string
	hash  string
}

func (p *passwordSource) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.stdin, "password-stdin", false, "read the password from the first line of standard input")
	cmd.Flags().StringVar(&p.file, "password-file", "", "read the password from the first line of FILE")
	cmd.Flags().StringVar(&p.hash, "password-hash", "", "store this existing bcrypt hash ($2a$, $2b$ or $2y$, as htpasswd -nB or docker_auth write it) as is; '-' reads it from standard input")
}

const minPasswordLen = 8

// minBcryptCost is the lowest cost regctl hashes with. Existing hashes
// given with --password-hash may be cheaper (htpasswd's default is 5); they
// are accepted with a warning.
const minBcryptCost = 10

// checkBcryptCost checks --bcrypt-cost.
func checkBcryptCost(cost int) error {
	if cost < minBcryptCost || cost > bcrypt.MaxCost {
		return cmdutil.FlagErrorf("--bcrypt-cost %d: use %d to %d", cost, minBcryptCost, bcrypt.MaxCost)
	}
	return nil
}

// passwordHash returns hash, the existing hash given with --password-hash,
// or if that is empty the bcrypt hash of pw. A dry run does not hash: it
// returns hash as it is.
func passwordHash(pw []byte, hash string, cost int, dryRun bool) (string, error) {
	if hash != "" || dryRun {
		return hash, nil
	}
	h, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// resolve returns either a password to hash or an existing hash, from
// exactly one of --password-hash, --password-stdin, --password-file or a
// TTY prompt asked twice. Passwords never come from argv.
func (p *passwordSource) resolve(ios *cmdutil.IOStreams) (pw []byte, hash string, err error) {
	n := 0
	for _, set := range []bool{p.stdin, p.file != "", p.hash != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, "", cmdutil.FlagErrorf("--password-stdin, --password-file and --password-hash are mutually exclusive")
	}
	if p.hash == "-" {
		line, err := firstLine(ios.In)
		if err != nil {
			return nil, "", fmt.Errorf("read password hash from stdin: %w", err)
		}
		p.hash = strings.TrimSpace(string(line))
		// htpasswd -nB prints NAME:HASH.
		if _, h, ok := strings.Cut(p.hash, ":"); ok {
			p.hash = h
		}
	}
	if p.hash != "" {
		cost, err := passwd.CheckHash(p.hash)
		if err != nil {
			return nil, "", &cmdutil.FlagError{Err: fmt.Errorf("--password-hash: %w", err)}
		}
		if cost < minBcryptCost {
			fmt.Fprintf(ios.ErrOut, "Warning: the hash has bcrypt cost %d (below %d); consider `regctl user passwd` to rehash\n", cost, minBcryptCost)
		}
		return nil, p.hash, nil
	}
	pw, err = p.read(ios)
	return pw, "", err
}

// read returns the password from stdin, a file, or a TTY prompt asked
// twice.
func (p *passwordSource) read(ios *cmdutil.IOStreams) ([]byte, error) {
	var pw []byte
	switch {
	case p.stdin:
		line, err := firstLine(ios.In)
		if err != nil {
			return nil, fmt.Errorf("read password from stdin: %w", err)
		}
		pw = line
	case p.file != "":
		fh, err := os.Open(p.file)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		defer fh.Close()
		line, err := firstLine(fh)
		if err != nil {
			return nil, fmt.Errorf("read password file %s: %w", p.file, err)
		}
		pw = line
	case ios.IsStdinTTY():
		fmt.Fprint(ios.ErrOut, "Password: ")
		a, err := ios.ReadPassword()
		fmt.Fprintln(ios.ErrOut)
		if err != nil {
			return nil, err
		}
		fmt.Fprint(ios.ErrOut, "Repeat password: ")
		b, err := ios.ReadPassword()
		fmt.Fprintln(ios.ErrOut)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(a, b) {
			return nil, errors.New("passwords do not match")
		}
		pw = a
	default:
		return nil, cmdutil.FlagErrorf("no password given: use --password-stdin, --password-file or --password-hash (standard input is not a terminal)")
	}
	if len(pw) < minPasswordLen {
		return nil, fmt.Errorf("password too short: use at least %d characters", minPasswordLen)
	}
	if len(pw) > 72 {
		return nil, errors.New("password too long: bcrypt uses at most 72 bytes")
	}
	return pw, nil
}

func firstLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return nil, errors.New("empty password")
	}
	return line, nil
}

// AddOptions are `regctl user add`'s settings.
type AddOptions struct {
	cmdutil.Deps

	Username string
	Password []byte
	// PasswordHash is an existing bcrypt hash (--password-hash); Password
	// is empty then.
	PasswordHash string
	Expires      *time.Time
	Labels       map[string][]string
	BcryptCost   int
	DryRun       bool
}

// NewCmdAdd builds `regctl user add`.
func NewCmdAdd(f *cmdutil.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	var pw passwordSource
	var expires string
	var labels []string
	o := &AddOptions{}
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a user",
		Long: `Create a user. The password comes from a terminal prompt (asked twice, not
echoed), --password-stdin or --password-file, never from the command line,
and is stored as a bcrypt hash. --password-hash takes an existing bcrypt hash
instead (from htpasswd -nB or a docker_auth users list) and stores it as is.`,
		Example: `  regctl user add waldi --label full-access='test/*' --expires 90d
  printf '%s\n' "$PASSWORD" | regctl user add ci-bot --password-stdin --expires 2027-01-01
  htpasswd -nBC 12 legacy | regctl user add legacy --password-hash - --label read-only-access='prod/*'`,
		Args:              cmdutil.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			if err := checkBcryptCost(o.BcryptCost); err != nil {
				return err
			}
			var err error
			if o.Expires, err = cmdutil.ParseExpiry("expires", expires, f.Now()); err != nil {
				return err
			}
			if o.Labels, err = cmdutil.ParseLabels(labels); err != nil {
				return err
			}
			if o.Password, o.PasswordHash, err = pw.resolve(f.IO); err != nil {
				return err
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return addRun(cmd.Context(), o)
		},
	}
	pw.register(cmd)
	cmd.Flags().StringVar(&expires, "expires", "", "account expiry: RFC 3339 date or time, or a duration such as 90d")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable; repeat a key for several values)")
	cmd.Flags().IntVar(&o.BcryptCost, "bcrypt-cost", config.DefaultBcryptCost, "bcrypt cost (10-31)")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func addRun(ctx context.Context, o *AddOptions) error {
	now := o.Now()
	u := &store.User{Username: o.Username, PasswordHash: o.PasswordHash, Labels: o.Labels, ExpiresAt: o.Expires,
		CreatedAt: store.Truncate(now), UpdatedAt: store.Truncate(now)}
	var err error
	if u.PasswordHash, err = passwordHash(o.Password, o.PasswordHash, o.BcryptCost, o.DryRun); err != nil {
		return err
	}
	return o.WithStore(ctx, func(st store.Store) error {
		if o.DryRun {
			if _, err := st.GetUser(ctx, o.Username); err == nil {
				return cmdutil.StoreErr(store.ErrExists, "user "+o.Username)
			} else if !errors.Is(err, store.ErrNotFound) {
				return cmdutil.StoreErr(err, "user "+o.Username)
			}
		} else if err := st.CreateUser(ctx, u); err != nil {
			return cmdutil.StoreErr(err, "user "+o.Username)
		}
		msg := cmdutil.Would(o.DryRun, "Created user ", "create user ") + o.Username
		var details []string
		if len(u.Labels) > 0 {
			details = append(details, "labels "+strings.Join(cmdutil.LabelPairs(u.Labels), ", "))
		}
		if o.Expires != nil {
			details = append(details, "expires "+o.Expires.Format(time.RFC3339))
		} else {
			details = append(details, "never expires")
		}
		fmt.Fprintf(o.IO.ErrOut, "%s (%s)\n", msg, strings.Join(details, "; "))
		return nil
	})
}

// GrantOptions are `regctl user grant`'s settings.
type GrantOptions struct {
	cmdutil.Deps

	Username string
	Grant    acl.Grant
	DryRun   bool
}

// NewCmdGrant builds `regctl user grant`.
func NewCmdGrant(f *cmdutil.Factory, runF func(context.Context, *GrantOptions) error) *cobra.Command {
	var actions, expires string
	o := &GrantOptions{}
	cmd := &cobra.Command{
		Use:   "grant NAME PATTERN",
		Short: "Give a user actions on repositories matching PATTERN",
		Long: `Give a user actions on the repositories whose name matches PATTERN, a glob
in which '*' does not cross '/'. Granting the same pattern again replaces its
actions and expiry. A grant adds to what the rules allow; an explicit deny
rule never takes it away.`,
		Example: "  regctl user grant waldi 'team/*' --actions pull,push\n  regctl user grant contractor 'team/app' --actions pull --expires 30d",
		Args:    cmdutil.ExactArgs(2),
		ValidArgsFunction: cmdutil.CompleteUserThen(f, func(context.Context, *store.User, []string) []string {
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username, o.Grant = args[0], acl.Grant{Pattern: args[1]}
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			var err error
			if o.Grant.Actions, err = cmdutil.ParseActions(actions); err != nil {
				return err
			}
			if o.Grant.ExpiresAt, err = cmdutil.ParseExpiry("expires", expires, f.Now()); err != nil {
				return err
			}
			if err := o.Grant.Validate(); err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return grantRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&actions, "actions", "", "comma-separated actions: pull, push, delete, * (required)")
	cmd.Flags().StringVar(&expires, "expires", "", "grant expiry: RFC 3339 date or time, or a duration such as 30d")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	_ = cmd.RegisterFlagCompletionFunc("actions", cmdutil.CompleteActions)
	return cmd
}

// describeGrant renders a grant for messages: "team/*:pull,push until
// 2026-12-01T00:00:00Z".
func describeGrant(g acl.Grant) string {
	s := g.Pattern + ":" + strings.Join(g.Actions, ",")
	if g.ExpiresAt != nil {
		s += " until " + g.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return s
}

func grantRun(ctx context.Context, o *GrantOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		var old *acl.Grant
		_, err := cmdutil.UpdateUser(ctx, st, o.Username, o.DryRun, func(u *store.User) error {
			old = nil
			i := slices.IndexFunc(u.Grants, func(g acl.Grant) bool { return g.Pattern == o.Grant.Pattern })
			if i >= 0 {
				g := u.Grants[i]
				old = &g
				if grantsEqual(g, o.Grant) {
					return errNoChange
				}
				u.Grants[i] = o.Grant
			} else {
				u.Grants = append(u.Grants, o.Grant)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errNoChange) {
			return err
		}
		switch {
		case errors.Is(err, errNoChange):
			fmt.Fprintf(o.IO.ErrOut, "No change: %s already has %s\n", o.Username, describeGrant(o.Grant))
		case old != nil:
			fmt.Fprintf(o.IO.ErrOut, "%s %s's grant: %s (was %s)\n", cmdutil.Would(o.DryRun, "Updated", "update"), o.Username,
				describeGrant(o.Grant), describeGrant(*old))
		default:
			fmt.Fprintf(o.IO.ErrOut, "%s %s %s\n", cmdutil.Would(o.DryRun, "Granted", "grant"), o.Username, describeGrant(o.Grant))
		}
		return nil
	})
}

func grantsEqual(a, b acl.Grant) bool {
	return a.Pattern == b.Pattern && slices.Equal(a.Actions, b.Actions) && cmdutil.TimePtrEqual(a.ExpiresAt, b.ExpiresAt)
}

// RevokeOptions are `regctl user revoke`'s settings.
type RevokeOptions struct {
	cmdutil.Deps

	Username string
	Pattern  string
	// Actions to take away; empty removes the whole grant.
	Actions []string
	DryRun  bool
}

// NewCmdRevoke builds `regctl user revoke`.
func NewCmdRevoke(f *cmdutil.Factory, runF func(context.Context, *RevokeOptions) error) *cobra.Command {
	var actions string
	o := &RevokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke NAME PATTERN",
		Short: "Remove a user's grant on PATTERN, or only some of its actions",
		Long: `Remove a user's grant on PATTERN (written exactly as it was granted; see
regctl user show NAME). With --actions only those actions are taken away;
taking away the last one removes the grant.`,
		Example: "  regctl user revoke waldi 'team/*'\n  regctl user revoke waldi 'team/*' --actions push,delete",
		Args:    cmdutil.ExactArgs(2),
		ValidArgsFunction: cmdutil.CompleteUserThen(f, func(_ context.Context, u *store.User, args []string) []string {
			if len(args) != 1 {
				return nil
			}
			var out []string
			for _, g := range u.Grants {
				out = append(out, g.Pattern+"\t"+strings.Join(g.Actions, ","))
			}
			return out
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username, o.Pattern = args[0], args[1]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			if cmd.Flags().Changed("actions") {
				var err error
				if o.Actions, err = cmdutil.ParseActions(actions); err != nil {
					return err
				}
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return revokeRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&actions, "actions", "", "take away only these actions (comma separated); default: the whole grant")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	_ = cmd.RegisterFlagCompletionFunc("actions", cmdutil.CompleteActions)
	return cmd
}

// errNoChange ends an update that would not change anything.
var errNoChange = errors.New("no change")

func revokeRun(ctx context.Context, o *RevokeOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		var old acl.Grant
		var left []string
		_, err := cmdutil.UpdateUser(ctx, st, o.Username, o.DryRun, func(u *store.User) error {
			i := slices.IndexFunc(u.Grants, func(g acl.Grant) bool { return g.Pattern == o.Pattern })
			if i < 0 {
				var have []string
				for _, g := range u.Grants {
					have = append(have, g.Pattern)
				}
				if len(have) == 0 {
					return fmt.Errorf("user %s has no grant on %s (it has no grants)", o.Username, o.Pattern)
				}
				return fmt.Errorf("user %s has no grant on %s (its grants: %s)", o.Username, o.Pattern, strings.Join(have, ", "))
			}
			old = u.Grants[i]
			left = nil
			if len(o.Actions) > 0 && !slices.Contains(o.Actions, acl.ActionAll) {
				if slices.Contains(old.Actions, acl.ActionAll) {
					return fmt.Errorf("the grant on %s allows * (every action), so %s cannot be taken away from it: revoke the whole grant, or grant %s again with --actions listing what should remain",
						o.Pattern, strings.Join(o.Actions, ","), o.Pattern)
				}
				for _, a := range old.Actions {
					if !slices.Contains(o.Actions, a) {
						left = append(left, a)
					}
				}
				if len(left) == len(old.Actions) {
					return errNoChange
				}
			}
			if len(left) == 0 {
				u.Grants = slices.Delete(u.Grants, i, i+1)
			} else {
				u.Grants[i].Actions = left
			}
			return nil
		})
		if errors.Is(err, errNoChange) {
			fmt.Fprintf(o.IO.ErrOut, "No change: %s's grant on %s has none of %s (it has %s)\n",
				o.Username, o.Pattern, strings.Join(o.Actions, ","), strings.Join(old.Actions, ","))
			return nil
		}
		if err != nil {
			return err
		}
		if len(left) == 0 {
			fmt.Fprintf(o.IO.ErrOut, "%s %s's grant %s\n", cmdutil.Would(o.DryRun, "Revoked", "revoke"), o.Username, describeGrant(old))
			return nil
		}
		g := old
		g.Actions = left
		fmt.Fprintf(o.IO.ErrOut, "%s %s from %s's grant on %s: now %s (was %s)\n", cmdutil.Would(o.DryRun, "Revoked", "revoke"),
			strings.Join(o.Actions, ","), o.Username, o.Pattern, describeGrant(g), describeGrant(old))
		return nil
	})
}
