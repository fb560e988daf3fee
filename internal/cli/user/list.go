package user

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/when"
)

// View is a user as `user list` and `user show` print it in JSON and
// YAML: never the password hash; times in UTC (RFC 3339); status computed
// at the command's clock; empty labels and grants as {} and [].
type View struct {
	Username  string              `json:"username" yaml:"username"`
	Status    store.Status        `json:"status" yaml:"status"`
	ExpiresAt *time.Time          `json:"expires_at" yaml:"expires_at"`
	Disabled  bool                `json:"disabled" yaml:"disabled"`
	Labels    map[string][]string `json:"labels" yaml:"labels"`
	Grants    []grantView         `json:"grants" yaml:"grants"`
	CreatedAt *time.Time          `json:"created_at,omitempty" yaml:"created_at,omitempty"`
	UpdatedAt *time.Time          `json:"updated_at,omitempty" yaml:"updated_at,omitempty"`
}

// grantView is one grant in a View; Status is "active" or "expired".
type grantView struct {
	Pattern   string     `json:"pattern" yaml:"pattern"`
	Actions   []string   `json:"actions" yaml:"actions"`
	ExpiresAt *time.Time `json:"expires_at" yaml:"expires_at"`
	Status    string     `json:"status" yaml:"status"`
}

func newView(u *store.User, now time.Time) View {
	v := View{
		Username:  u.Username,
		Status:    u.Status(now),
		ExpiresAt: cmdutil.UTC(u.ExpiresAt),
		Disabled:  u.Disabled,
		Labels:    map[string][]string{},
		Grants:    []grantView{},
	}
	for k, vals := range u.Labels {
		v.Labels[k] = append([]string{}, vals...)
	}
	for _, g := range u.Grants {
		st := "active"
		if acl.Expired(g.ExpiresAt, now) {
			st = "expired"
		}
		v.Grants = append(v.Grants, grantView{Pattern: g.Pattern, Actions: append([]string{}, g.Actions...),
			ExpiresAt: cmdutil.UTC(g.ExpiresAt), Status: st})
	}
	if !u.CreatedAt.IsZero() {
		v.CreatedAt = cmdutil.UTC(&u.CreatedAt)
	}
	if !u.UpdatedAt.IsZero() {
		v.UpdatedAt = cmdutil.UTC(&u.UpdatedAt)
	}
	return v
}

// statusCell colours a status on a terminal: green active, red otherwise.
func statusCell(c cmdutil.Colors, st store.Status) string {
	if st == store.StatusActive {
		return c.Green(string(st))
	}
	return c.Red(string(st))
}

// grantSummary renders a grant for a table cell: "team/*:pull,push",
// with "(expires in 3 days)" or "(expired 2 days ago)" when it has an
// expiry.
func grantSummary(g acl.Grant, now time.Time) string {
	s := g.Pattern + ":" + strings.Join(g.Actions, ",")
	switch {
	case g.ExpiresAt == nil:
	case acl.Expired(g.ExpiresAt, now):
		s += " (expired " + cmdutil.RelTime(*g.ExpiresAt, now) + ")"
	default:
		s += " (expires " + cmdutil.RelTime(*g.ExpiresAt, now) + ")"
	}
	return s
}

// ListOptions are `regctl user list`'s settings.
type ListOptions struct {
	cmdutil.Deps

	// Expiring keeps only accounts that are not yet expired and expire
	// within this duration (0: all accounts).
	Expiring time.Duration
	Output   string
}

// NewCmdList builds `regctl user list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	var expiring string
	o := &ListOptions{}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List users with their status, expiry, labels and grants",
		Long: `List every user, sorted by name: status (active, disabled or expired),
account expiry, labels and grants. Dates are shown in the local time zone
with the time left; --output json or yaml prints the same data for scripts,
with RFC 3339 times in UTC and never the password hash.`,
		Example: `  regctl user list
  regctl user list --expiring 7d
  regctl user list -o json | jq -r '.[] | select(.status == "expired") | .username'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckOutput(o.Output, cmdutil.FormatTable, cmdutil.FormatJSON, cmdutil.FormatYAML); err != nil {
				return err
			}
			if expiring != "" {
				d, err := when.ParseDuration(expiring)
				if err != nil || d <= 0 {
					return cmdutil.FlagErrorf("--expiring %q: want a positive duration such as 7d, 12h or 2w", expiring)
				}
				o.Expiring = d
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return listRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&expiring, "expiring", "", "only accounts that expire within this duration (e.g. 7d), not those already expired")
	cmdutil.AddOutputFlag(cmd, &o.Output, cmdutil.FormatTable, cmdutil.FormatJSON, cmdutil.FormatYAML)
	return cmd
}

func listRun(ctx context.Context, o *ListOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		users, err := st.ListUsers(ctx)
		if err != nil {
			return cmdutil.StoreErr(err, "users")
		}
		now := o.Now()
		if o.Expiring > 0 {
			kept := users[:0]
			for _, u := range users {
				if u.ExpiresAt != nil && !acl.Expired(u.ExpiresAt, now) && !u.ExpiresAt.After(now.Add(o.Expiring)) {
					kept = append(kept, u)
				}
			}
			users = kept
		}
		if o.Output != cmdutil.FormatTable {
			views := make([]View, 0, len(users))
			for i := range users {
				views = append(views, newView(&users[i], now))
			}
			return cmdutil.WriteData(o.IO.Out, o.Output, views)
		}
		if len(users) == 0 {
			if o.Expiring > 0 {
				fmt.Fprintf(o.IO.ErrOut, "No account expires within %s.\n", formatDuration(o.Expiring))
			} else {
				fmt.Fprintln(o.IO.ErrOut, "No users. Add one with: regctl user add NAME")
			}
			return nil
		}
		return userTable(o.IO.Out, users, now, o.Loc(), o.Colors())
	})
}

func userTable(w io.Writer, users []store.User, now time.Time, loc *time.Location, c cmdutil.Colors) error {
	t := cmdutil.NewTable("NAME", "STATUS", "EXPIRES", "LABELS", "GRANTS")
	for i := range users {
		u := &users[i]
		var grants []string
		for _, g := range u.Grants {
			grants = append(grants, grantSummary(g, now))
		}
		t.Row(u.Username, statusCell(c, u.Status(now)), cmdutil.FormatExpiry(u.ExpiresAt, now, loc),
			strings.Join(cmdutil.LabelPairs(u.Labels), ", "), strings.Join(grants, ", "))
	}
	return t.Render(w)
}

// ShowOptions are `regctl user show`'s settings.
type ShowOptions struct {
	cmdutil.Deps

	Username string
	Output   string
}

// NewCmdShow builds `regctl user show`.
func NewCmdShow(f *cmdutil.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	o := &ShowOptions{}
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one user in detail",
		Long: `Show one user: status, expiry, labels, every grant with its expiry, and when
the account was created and last changed. --output json or yaml prints the
same object as one element of user list's output.`,
		Example:           "  regctl user show waldi\n  regctl user show waldi -o yaml",
		Args:              cmdutil.ExactArgs(1),
		ValidArgsFunction: cmdutil.CompleteUsers(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.CheckOutput(o.Output, cmdutil.FormatTable, cmdutil.FormatJSON, cmdutil.FormatYAML); err != nil {
				return err
			}
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return showRun(cmd.Context(), o)
		},
	}
	cmdutil.AddOutputFlag(cmd, &o.Output, cmdutil.FormatTable, cmdutil.FormatJSON, cmdutil.FormatYAML)
	return cmd
}

func showRun(ctx context.Context, o *ShowOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		u, err := st.GetUser(ctx, o.Username)
		if err != nil {
			return cmdutil.StoreErr(err, "user "+o.Username)
		}
		now := o.Now()
		if o.Output != cmdutil.FormatTable {
			return cmdutil.WriteData(o.IO.Out, o.Output, newView(u, now))
		}
		return userDetail(o.IO.Out, u, now, o.Loc(), o.Colors())
	})
}

func userDetail(w io.Writer, u *store.User, now time.Time, loc *time.Location, c cmdutil.Colors) error {
	fmt.Fprintf(w, "Name:     %s\n", u.Username)
	fmt.Fprintf(w, "Status:   %s\n", statusCell(c, u.Status(now)))
	fmt.Fprintf(w, "Expires:  %s\n", cmdutil.FormatExpiry(u.ExpiresAt, now, loc))
	if !u.CreatedAt.IsZero() {
		fmt.Fprintf(w, "Created:  %s\n", cmdutil.FormatDate(u.CreatedAt, now, loc))
	}
	if !u.UpdatedAt.IsZero() {
		fmt.Fprintf(w, "Updated:  %s\n", cmdutil.FormatDate(u.UpdatedAt, now, loc))
	}
	if pairs := cmdutil.LabelPairs(u.Labels); len(pairs) > 0 {
		fmt.Fprintln(w, "Labels:")
		for _, p := range pairs {
			fmt.Fprintf(w, "  %s\n", p)
		}
	} else {
		fmt.Fprintln(w, "Labels:   none")
	}
	if len(u.Grants) == 0 {
		fmt.Fprintln(w, "Grants:   none")
		return nil
	}
	fmt.Fprintln(w, "Grants:")
	t := cmdutil.NewTable("  PATTERN", "ACTIONS", "EXPIRES")
	for _, g := range u.Grants {
		t.Row("  "+g.Pattern, strings.Join(g.Actions, ","), cmdutil.FormatExpiry(g.ExpiresAt, now, loc))
	}
	return t.Render(w)
}

// formatDuration renders d as the flags take it: "7d", "36h", "90m".
func formatDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
