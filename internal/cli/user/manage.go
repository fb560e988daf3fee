package user

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/when"
)

// PasswdOptions are `regctl user passwd`'s settings.
type PasswdOptions struct {
	cmdutil.Deps

	Username     string
	Password     []byte
	PasswordHash string
	BcryptCost   int
	DryRun       bool
}

// NewCmdPasswd builds `regctl user passwd`.
func NewCmdPasswd(f *cmdutil.Factory, runF func(context.Context, *PasswdOptions) error) *cobra.Command {
	var pw passwordSource
	o := &PasswdOptions{}
	cmd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Change a user's password",
		Long: `Change a user's password, read like user add's: from a terminal prompt (asked
twice), --password-stdin, --password-file, or an existing bcrypt hash with
--password-hash. Refresh tokens issued before the change (docker login's
stored identity tokens) stop working.`,
		Example: `  regctl user passwd waldi
  printf '%s\n' "$NEW_PASSWORD" | regctl user passwd ci-bot --password-stdin`,
		Args:              cmdutil.ExactArgs(1),
		ValidArgsFunction: cmdutil.CompleteUsers(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			if err := checkBcryptCost(o.BcryptCost); err != nil {
				return err
			}
			var err error
			if o.Password, o.PasswordHash, err = pw.resolve(f.IO); err != nil {
				return err
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return passwdRun(cmd.Context(), o)
		},
	}
	pw.register(cmd)
	cmd.Flags().IntVar(&o.BcryptCost, "bcrypt-cost", config.DefaultBcryptCost, "bcrypt cost (10-31)")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func passwdRun(ctx context.Context, o *PasswdOptions) error {
	hash, err := passwordHash(o.Password, o.PasswordHash, o.BcryptCost, o.DryRun)
	if err != nil {
		return err
	}
	return o.WithStore(ctx, func(st store.Store) error {
		_, err := cmdutil.UpdateUser(ctx, st, o.Username, o.DryRun, func(u *store.User) error {
			u.PasswordHash = hash
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(o.IO.ErrOut, "%s the password of %s; refresh tokens issued before the change stop working\n",
			cmdutil.Would(o.DryRun, "Changed", "change"), o.Username)
		return nil
	})
}

// ExpireOptions are `regctl user expire`'s settings.
type ExpireOptions struct {
	cmdutil.Deps

	Username string
	// Expires is the new expiry; nil means never.
	Expires *time.Time
	DryRun  bool
}

// NewCmdExpire builds `regctl user expire`.
func NewCmdExpire(f *cmdutil.Factory, runF func(context.Context, *ExpireOptions) error) *cobra.Command {
	o := &ExpireOptions{}
	cmd := &cobra.Command{
		Use:   "expire NAME WHEN|never",
		Short: "Set or clear a user's account expiry",
		Long: `Set when a user's account expires: an RFC 3339 date (midnight UTC) or time,
or a duration from now such as 90d, 12h or 2w. "never" removes the expiry.
At the expiry the token server refuses the account (401) before any grant
or rule is consulted. To block an account at once, use regctl user disable.`,
		Example: `  regctl user expire waldi 2027-01-01
  regctl user expire contractor 30d
  regctl user expire waldi never`,
		Args: cmdutil.ExactArgs(2),
		ValidArgsFunction: cmdutil.CompleteUserThen(f, func(context.Context, *store.User, []string) []string {
			return []string{"never\tremove the expiry", "30d\t30 days from now", "90d\t90 days from now"}
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			if args[1] != "never" {
				t, err := when.Parse(args[1], f.Now())
				if err != nil {
					return &cmdutil.FlagError{Err: fmt.Errorf("%w, or never", err)}
				}
				if !t.After(f.Now()) {
					return cmdutil.FlagErrorf("%s lies in the past: to block the account now, use regctl user disable %s", args[1], o.Username)
				}
				t = store.Truncate(t)
				o.Expires = &t
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return expireRun(cmd.Context(), o)
		},
	}
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func formatExpiryRFC(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func expireRun(ctx context.Context, o *ExpireOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		var old *time.Time
		var wasStatus store.Status
		now := o.Now()
		_, err := cmdutil.UpdateUser(ctx, st, o.Username, o.DryRun, func(u *store.User) error {
			old, wasStatus = u.ExpiresAt, u.Status(now)
			if cmdutil.TimePtrEqual(u.ExpiresAt, o.Expires) {
				return errNoChange
			}
			u.ExpiresAt = o.Expires
			return nil
		})
		if errors.Is(err, errNoChange) {
			if o.Expires == nil {
				fmt.Fprintf(o.IO.ErrOut, "No change: %s already never expires\n", o.Username)
			} else {
				fmt.Fprintf(o.IO.ErrOut, "No change: %s already expires %s\n", o.Username, formatExpiryRFC(o.Expires))
			}
			return nil
		}
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("%s %s's expiry to %s (was %s)", cmdutil.Would(o.DryRun, "Set", "set"), o.Username,
			formatExpiryRFC(o.Expires), formatExpiryRFC(old))
		if wasStatus == store.StatusExpired {
			msg += "; the account is active again"
		}
		fmt.Fprintln(o.IO.ErrOut, msg)
		return nil
	})
}

// StateOptions are the settings of `regctl user disable` and `enable`.
type StateOptions struct {
	cmdutil.Deps

	Username string
	Disable  bool
	DryRun   bool
}

// NewCmdDisable builds `regctl user disable`.
func NewCmdDisable(f *cmdutil.Factory, runF func(context.Context, *StateOptions) error) *cobra.Command {
	return newCmdState(f, runF, true)
}

// NewCmdEnable builds `regctl user enable`.
func NewCmdEnable(f *cmdutil.Factory, runF func(context.Context, *StateOptions) error) *cobra.Command {
	return newCmdState(f, runF, false)
}

func newCmdState(f *cmdutil.Factory, runF func(context.Context, *StateOptions) error, disable bool) *cobra.Command {
	o := &StateOptions{Disable: disable}
	cmd := &cobra.Command{
		Use:               "enable NAME",
		Short:             "Re-enable a disabled user",
		Long:              "Re-enable a disabled user. Its password, labels, grants and expiry are unchanged; an expired account stays expired.",
		Example:           "  regctl user enable waldi",
		Args:              cmdutil.ExactArgs(1),
		ValidArgsFunction: cmdutil.CompleteUsers(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return stateRun(cmd.Context(), o)
		},
	}
	if disable {
		cmd.Use = "disable NAME"
		cmd.Short = "Block a user at once, keeping the account"
		cmd.Long = `Block a user: the token server refuses the account (401) within its reload
interval, before any grant or rule is consulted. Password, labels, grants and
expiry are kept; regctl user enable undoes it.`
		cmd.Example = "  regctl user disable waldi"
	}
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func stateRun(ctx context.Context, o *StateOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		var after *store.User
		u, err := cmdutil.UpdateUser(ctx, st, o.Username, o.DryRun, func(u *store.User) error {
			if u.Disabled == o.Disable {
				return errNoChange
			}
			u.Disabled = o.Disable
			return nil
		})
		after = u
		state := "enabled"
		if o.Disable {
			state = "disabled"
		}
		var msg string
		switch {
		case errors.Is(err, errNoChange):
			msg = fmt.Sprintf("No change: user %s is already %s", o.Username, state)
			after, err = st.GetUser(ctx, o.Username)
			if err != nil {
				return cmdutil.StoreErr(err, "user "+o.Username)
			}
		case err != nil:
			return err
		case o.Disable:
			msg = fmt.Sprintf("%s user %s", cmdutil.Would(o.DryRun, "Disabled", "disable"), o.Username)
		default:
			msg = fmt.Sprintf("%s user %s", cmdutil.Would(o.DryRun, "Enabled", "enable"), o.Username)
		}
		if !o.Disable && after.Status(o.Now()) == store.StatusExpired {
			msg += fmt.Sprintf("; note: the account expired %s, extend it with: regctl user expire %s WHEN",
				formatExpiryRFC(after.ExpiresAt), o.Username)
		}
		fmt.Fprintln(o.IO.ErrOut, msg)
		return nil
	})
}

// DeleteOptions are `regctl user delete`'s settings.
type DeleteOptions struct {
	cmdutil.Deps

	Username string
	Yes      bool
	DryRun   bool
}

// NewCmdDelete builds `regctl user delete`.
func NewCmdDelete(f *cmdutil.Factory, runF func(context.Context, *DeleteOptions) error) *cobra.Command {
	o := &DeleteOptions{}
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a user and its grants",
		Long: `Delete a user with its labels and grants. On a terminal it asks for
confirmation unless --yes is given; without a terminal --yes is required. To
block an account but keep it, use regctl user disable.`,
		Example:           "  regctl user delete waldi\n  regctl user delete ci-bot --yes",
		Args:              cmdutil.ExactArgs(1),
		ValidArgsFunction: cmdutil.CompleteUsers(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			if !o.Yes && !o.DryRun && !f.IO.CanPrompt() {
				return cmdutil.FlagErrorf("refusing to delete user %s without confirmation: pass --yes (standard input is not a terminal)", o.Username)
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return deleteRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "delete without asking for confirmation")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func deleteRun(ctx context.Context, o *DeleteOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		u, err := st.GetUser(ctx, o.Username)
		if err != nil {
			return cmdutil.StoreErr(err, "user "+o.Username)
		}
		what := fmt.Sprintf("user %s (%s, %d label value(s), %d grant(s))", o.Username, u.Status(o.Now()),
			len(cmdutil.LabelPairs(u.Labels)), len(u.Grants))
		if o.DryRun {
			fmt.Fprintf(o.IO.ErrOut, "Would delete %s\n", what)
			return nil
		}
		if !o.Yes {
			ok, err := o.IO.Confirm("Delete " + what + "?")
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("cancelled: user %s not deleted", o.Username)
			}
		}
		if err := st.DeleteUser(ctx, o.Username); err != nil {
			return cmdutil.StoreErr(err, "user "+o.Username)
		}
		fmt.Fprintf(o.IO.ErrOut, "Deleted %s\n", what)
		return nil
	})
}

// NewCmdLabel builds `regctl user label`.
func NewCmdLabel(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "label",
		Short: "Set or remove a user's labels",
		Long: `Labels are KEY=VALUE pairs; a key may have several values. Rules read them
through ${labels:KEY} (e.g. the classic full-access and read-only-access
rules installed by regctl acl defaults) and match.labels conditions.`,
		Example: `  regctl user label set waldi full-access='test/*' full-access='socke*'
  regctl user label unset waldi full-access='socke*'`,
	}
	cmd.AddCommand(NewCmdLabelSet(f, nil), NewCmdLabelUnset(f, nil))
	return cmd
}

// LabelOptions are the settings of `regctl user label set` and `unset`.
type LabelOptions struct {
	cmdutil.Deps

	Username string
	// Set: the new values per key. Unset: the values to remove per key;
	// an empty list removes the key.
	Labels map[string][]string
	// Keys in the order given, for messages.
	Keys []string
	// Add (set only) adds the values to the key's existing ones instead of
	// replacing them.
	Add    bool
	Unset  bool
	DryRun bool
}

// NewCmdLabelSet builds `regctl user label set`.
func NewCmdLabelSet(f *cmdutil.Factory, runF func(context.Context, *LabelOptions) error) *cobra.Command {
	o := &LabelOptions{}
	cmd := &cobra.Command{
		Use:   "set NAME KEY=VALUE...",
		Short: "Set label values (repeat a key for several values)",
		Long: `Set labels on a user. Each KEY given gets exactly the values given for it
(repeat KEY=VALUE for several values); keys not given are left alone. With
--add the values are added to the key's existing ones instead.`,
		Example: `  regctl user label set waldi full-access='test/*' full-access='socke*'
  regctl user label set waldi read-only-access='prod/*' --add`,
		Args:              cmdutil.MinimumNArgs(2),
		ValidArgsFunction: cmdutil.CompleteUsers(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			var err error
			if o.Labels, err = cmdutil.ParseLabels(args[1:]); err != nil {
				return err
			}
			o.Keys = labelKeysInOrder(args[1:])
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return labelRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Add, "add", false, "add the values to the key's existing values instead of replacing them")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

// NewCmdLabelUnset builds `regctl user label unset`.
func NewCmdLabelUnset(f *cmdutil.Factory, runF func(context.Context, *LabelOptions) error) *cobra.Command {
	o := &LabelOptions{Unset: true}
	cmd := &cobra.Command{
		Use:   "unset NAME KEY[=VALUE]...",
		Short: "Remove a label, or one of its values",
		Long:  "Remove labels from a user: KEY removes the key with all its values, KEY=VALUE only that value.",
		Example: `  regctl user label unset waldi read-only-access
  regctl user label unset waldi full-access='socke*'`,
		Args: cmdutil.MinimumNArgs(2),
		ValidArgsFunction: cmdutil.CompleteUserThen(f, func(_ context.Context, u *store.User, _ []string) []string {
			var out []string
			for _, k := range labelKeysSorted(u.Labels) {
				out = append(out, k)
				for _, v := range u.Labels[k] {
					out = append(out, k+"="+v)
				}
			}
			return out
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			o.Labels = map[string][]string{}
			for _, kv := range args[1:] {
				k, v, hasValue := strings.Cut(kv, "=")
				if k == "" || (hasValue && v == "") {
					return cmdutil.FlagErrorf("label %q: want KEY or KEY=VALUE", kv)
				}
				if _, ok := o.Labels[k]; !ok {
					o.Labels[k] = []string{}
				}
				if hasValue && !slices.Contains(o.Labels[k], v) {
					o.Labels[k] = append(o.Labels[k], v)
				}
			}
			// KEY alone wins over KEY=VALUE for the same key.
			for _, kv := range args[1:] {
				if !strings.Contains(kv, "=") {
					o.Labels[kv] = []string{}
				}
			}
			o.Keys = labelKeysInOrder(args[1:])
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return labelRun(cmd.Context(), o)
		},
	}
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func labelKeysInOrder(args []string) []string {
	var keys []string
	for _, kv := range args {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

func labelKeysSorted(labels map[string][]string) []string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func labelRun(ctx context.Context, o *LabelOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		var msgs []string
		_, err := cmdutil.UpdateUser(ctx, st, o.Username, o.DryRun, func(u *store.User) error {
			msgs = msgs[:0]
			changed := false
			if u.Labels == nil {
				u.Labels = map[string][]string{}
			}
			for _, k := range o.Keys {
				old := u.Labels[k]
				var next []string
				switch {
				case !o.Unset && o.Add:
					next = append(slices.Clone(old), o.Labels[k]...)
					next = dedupe(next)
				case !o.Unset:
					next = o.Labels[k]
				case len(o.Labels[k]) == 0:
					next = nil
				default:
					for _, v := range old {
						if !slices.Contains(o.Labels[k], v) {
							next = append(next, v)
						}
					}
				}
				msg, ch := labelChange(o, k, old, next)
				msgs = append(msgs, msg)
				if !ch {
					continue
				}
				changed = true
				if len(next) == 0 {
					delete(u.Labels, k)
				} else {
					u.Labels[k] = next
				}
			}
			if !changed {
				return errNoChange
			}
			return nil
		})
		if err != nil && !errors.Is(err, errNoChange) {
			return err
		}
		for _, m := range msgs {
			fmt.Fprintln(o.IO.ErrOut, m)
		}
		return nil
	})
}

func dedupe(vals []string) []string {
	var out []string
	for _, v := range vals {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// labelChange describes one key's change and reports whether it changes
// anything.
func labelChange(o *LabelOptions, key string, old, next []string) (string, bool) {
	list := func(v []string) string { return strings.Join(v, ", ") }
	if slices.Equal(old, next) {
		switch {
		case len(old) == 0:
			return fmt.Sprintf("No change: %s has no label %s", o.Username, key), false
		case o.Unset:
			return fmt.Sprintf("No change: %s's label %s has none of %s (it has %s)", o.Username, key, list(o.Labels[key]), list(old)), false
		}
		return fmt.Sprintf("No change: %s's label %s is already %s", o.Username, key, list(old)), false
	}
	switch {
	case len(next) == 0:
		return fmt.Sprintf("%s %s's label %s (was %s)", cmdutil.Would(o.DryRun, "Removed", "remove"), o.Username, key, list(old)), true
	case len(old) == 0:
		return fmt.Sprintf("%s %s's label %s to %s (new)", cmdutil.Would(o.DryRun, "Set", "set"), o.Username, key, list(next)), true
	case o.Unset:
		var removed []string
		for _, v := range old {
			if !slices.Contains(next, v) {
				removed = append(removed, v)
			}
		}
		return fmt.Sprintf("%s %s from %s's label %s (now %s)", cmdutil.Would(o.DryRun, "Removed", "remove"), list(removed), o.Username, key, list(next)), true
	}
	return fmt.Sprintf("%s %s's label %s to %s (was %s)", cmdutil.Would(o.DryRun, "Set", "set"), o.Username, key, list(next), list(old)), true
}
