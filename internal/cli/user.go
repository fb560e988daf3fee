package cli

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
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/when"
)

// NewCmdUser builds `regctl user`.
func NewCmdUser(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users, their labels, grants and expiry"}
	cmd.AddCommand(
		NewCmdUserAdd(f, nil),
		NewCmdUserGrant(f, nil),
		NewCmdUserRevoke(f, nil),
	)
	return cmd
}

// passwordSource holds the mutually exclusive password flags.
type passwordSource struct {
	stdin bool
	file  string
}

func (p *passwordSource) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.stdin, "password-stdin", false, "read the password from the first line of standard input")
	cmd.Flags().StringVar(&p.file, "password-file", "", "read the password from the first line of FILE")
}

const minPasswordLen = 8

// read returns the password from stdin, a file, or a TTY prompt asked
// twice. Passwords never come from argv.
func (p *passwordSource) read(ios *IOStreams) ([]byte, error) {
	var pw []byte
	switch {
	case p.stdin && p.file != "":
		return nil, flagErrorf("--password-stdin and --password-file are mutually exclusive")
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
		return nil, flagErrorf("no password given: use --password-stdin or --password-file (standard input is not a terminal)")
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

// parseExpiry parses an optional --expires; it must lie in the future.
func parseExpiry(flag, s string, now time.Time) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := when.Parse(s, now)
	if err != nil {
		return nil, &FlagError{Err: fmt.Errorf("--%s: %w", flag, err)}
	}
	if !t.After(now) {
		return nil, flagErrorf("--%s %s lies in the past", flag, s)
	}
	t = t.UTC().Truncate(time.Millisecond)
	return &t, nil
}

// parseLabels turns KEY=VALUE flags into a label map.
func parseLabels(flags []string) (map[string][]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := map[string][]string{}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, flagErrorf("--label %q: want KEY=VALUE", kv)
		}
		if err := store.ValidateLabel(k, v); err != nil {
			return nil, &FlagError{Err: err}
		}
		if !slices.Contains(labels[k], v) {
			labels[k] = append(labels[k], v)
		}
	}
	return labels, nil
}

// parseActions parses "pull,push" into a validated action list.
func parseActions(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		switch a {
		case acl.ActionPull, acl.ActionPush, acl.ActionDelete, acl.ActionAll:
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		case "":
		default:
			return nil, flagErrorf("--actions: unknown action %q (use pull, push, delete or *)", a)
		}
	}
	if len(out) == 0 {
		return nil, flagErrorf("--actions is required: pull, push, delete or * (comma separated)")
	}
	return out, nil
}

// UserAddOptions are `regctl user add`'s settings.
type UserAddOptions struct {
	Username   string
	Password   []byte
	Expires    *time.Time
	Labels     map[string][]string
	BcryptCost int
}

// NewCmdUserAdd builds `regctl user add`.
func NewCmdUserAdd(f *Factory, runF func(context.Context, *UserAddOptions) error) *cobra.Command {
	var pw passwordSource
	var expires string
	var labels []string
	var cost int
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a user",
		Long:  "Create a user. The password comes from a terminal prompt, --password-stdin or --password-file, never from the command line, and is stored as a bcrypt hash.",
		Example: `  printf '%s\n' "$PASSWORD" | regctl user add waldi --password-stdin --label full-access=test/* --expires 90d
  regctl user add ci-bot --password-file /run/secrets/ci-bot --expires 2027-01-01`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &UserAddOptions{Username: args[0], BcryptCost: cost}
			if err := store.ValidateUsername(o.Username); err != nil {
				return &FlagError{Err: err}
			}
			if cost < 10 || cost > bcrypt.MaxCost {
				return flagErrorf("--bcrypt-cost %d: use 10 to %d", cost, bcrypt.MaxCost)
			}
			var err error
			if o.Expires, err = parseExpiry("expires", expires, f.Now()); err != nil {
				return err
			}
			if o.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if o.Password, err = pw.read(f.IO); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return userAddRun(cmd.Context(), f, o)
		},
	}
	pw.register(cmd)
	cmd.Flags().StringVar(&expires, "expires", "", "account expiry: RFC 3339 date or time, or a duration such as 90d")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable; repeat a key for several values)")
	cmd.Flags().IntVar(&cost, "bcrypt-cost", 12, "bcrypt cost (10-31)")
	return cmd
}

func userAddRun(ctx context.Context, f *Factory, o *UserAddOptions) error {
	hash, err := bcrypt.GenerateFromPassword(o.Password, o.BcryptCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	u := &store.User{Username: o.Username, PasswordHash: string(hash), Labels: o.Labels, ExpiresAt: o.Expires}
	return withStore(ctx, f, func(st store.Store) error {
		if err := st.CreateUser(ctx, u); err != nil {
			return storeErr(err, "user "+o.Username)
		}
		msg := "Created user " + o.Username
		if o.Expires != nil {
			msg += ", expires " + o.Expires.Format(time.RFC3339)
		}
		fmt.Fprintln(f.IO.ErrOut, msg)
		return nil
	})
}

// UserGrantOptions are `regctl user grant`'s settings.
type UserGrantOptions struct {
	Username string
	Grant    acl.Grant
}

// NewCmdUserGrant builds `regctl user grant`.
func NewCmdUserGrant(f *Factory, runF func(context.Context, *UserGrantOptions) error) *cobra.Command {
	var actions, expires string
	cmd := &cobra.Command{
		Use:   "grant NAME PATTERN",
		Short: "Give a user actions on repositories matching PATTERN",
		Long: `Give a user actions on the repositories whose name matches PATTERN, a glob
in which '*' does not cross '/'. Granting the same pattern again replaces its
actions and expiry.`,
		Example: "  regctl user grant waldi 'team/*' --actions pull,push\n  regctl user grant contractor 'team/app' --actions pull --expires 30d",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &UserGrantOptions{Username: args[0], Grant: acl.Grant{Pattern: args[1]}}
			var err error
			if o.Grant.Actions, err = parseActions(actions); err != nil {
				return err
			}
			if o.Grant.ExpiresAt, err = parseExpiry("expires", expires, f.Now()); err != nil {
				return err
			}
			if err := o.Grant.Validate(); err != nil {
				return &FlagError{Err: err}
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return userGrantRun(cmd.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&actions, "actions", "", "comma-separated actions: pull, push, delete, * (required)")
	cmd.Flags().StringVar(&expires, "expires", "", "grant expiry: RFC 3339 date or time, or a duration such as 30d")
	return cmd
}

func userGrantRun(ctx context.Context, f *Factory, o *UserGrantOptions) error {
	return withStore(ctx, f, func(st store.Store) error {
		var verb string
		_, err := st.UpdateUser(ctx, o.Username, func(u *store.User) error {
			verb = "Granted"
			u.Grants = slices.DeleteFunc(u.Grants, func(g acl.Grant) bool {
				if g.Pattern == o.Grant.Pattern {
					verb = "Updated grant:"
					return true
				}
				return false
			})
			u.Grants = append(u.Grants, o.Grant)
			return nil
		})
		if err != nil {
			return storeErr(err, "user "+o.Username)
		}
		msg := fmt.Sprintf("%s %s %s on %s", verb, o.Username, strings.Join(o.Grant.Actions, ","), o.Grant.Pattern)
		if o.Grant.ExpiresAt != nil {
			msg += ", expires " + o.Grant.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintln(f.IO.ErrOut, msg)
		return nil
	})
}

// UserRevokeOptions are `regctl user revoke`'s settings.
type UserRevokeOptions struct {
	Username string
	Pattern  string
}

// NewCmdUserRevoke builds `regctl user revoke`.
func NewCmdUserRevoke(f *Factory, runF func(context.Context, *UserRevokeOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "revoke NAME PATTERN",
		Short:   "Remove a user's grant on PATTERN",
		Example: "  regctl user revoke waldi 'team/*'",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &UserRevokeOptions{Username: args[0], Pattern: args[1]}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return userRevokeRun(cmd.Context(), f, o)
		},
	}
	return cmd
}

var errNoGrant = errors.New("no such grant")

func userRevokeRun(ctx context.Context, f *Factory, o *UserRevokeOptions) error {
	return withStore(ctx, f, func(st store.Store) error {
		_, err := st.UpdateUser(ctx, o.Username, func(u *store.User) error {
			n := len(u.Grants)
			u.Grants = slices.DeleteFunc(u.Grants, func(g acl.Grant) bool { return g.Pattern == o.Pattern })
			if len(u.Grants) == n {
				return errNoGrant
			}
			return nil
		})
		if errors.Is(err, errNoGrant) {
			return fmt.Errorf("user %s has no grant on %s", o.Username, o.Pattern)
		}
		if err != nil {
			return storeErr(err, "user "+o.Username)
		}
		fmt.Fprintf(f.IO.ErrOut, "Revoked %s's grant on %s\n", o.Username, o.Pattern)
		return nil
	})
}
