package acl

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/token"
	"github.com/regctl/regctl/internal/when"
)

// ExplainOptions are `regctl acl explain`'s settings.
type ExplainOptions struct {
	cmdutil.Deps

	Username string
	Scopes   []acl.Scope
	Service  string
	IP       netip.Addr // zero: unknown
	At       time.Time  // zero: now
	Output   string
}

// NewCmdExplain builds `regctl acl explain`.
func NewCmdExplain(f *cmdutil.Factory, runF func(context.Context, *ExplainOptions) error) *cobra.Command {
	var scopes []string
	var ip, at string
	o := &ExplainOptions{}
	cmd := &cobra.Command{
		Use:   "explain USER [ACTION REPOSITORY]",
		Short: "Explain how the token server decides a request, and why",
		Long: `Decide a request exactly as the token server does, from the store's current
users and rules, and show why: the account's status (an expired or disabled
account is refused before any grant or rule is consulted), then for each
scope every grant of the user and every rule in seq order up to the one that
decides, with its patterns after variable and label expansion, whether it
matched, was skipped as expired, or why it did not match, and which grant or
rule allowed each action.

ACTION is pull, push, delete or a comma-separated list; --scope takes full
scopes as the registry requests them (repeatable). --service defaults to the
configured service (REGCTL_SERVICE or the config file, as regctl serve reads
it). --at decides at another time, to check expiry dates.

It exits with 0 if every requested action is granted and 1 otherwise. The
running server applies store changes within its --reload-interval.`,
		Example: `  regctl acl explain waldi push team/app
  regctl acl explain waldi pull,push team/app --ip 203.0.113.7
  regctl acl explain ci-bot --scope repository:ci/app:pull,push --scope 'registry:catalog:*'
  regctl acl explain contractor pull team/app --at 2027-01-01
  regctl acl explain waldi push team/app -o json | jq .granted`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 3, len(args) == 1 && len(scopes) > 0:
				return nil
			case len(args) == 1:
				return cmdutil.FlagErrorf("give ACTION and REPOSITORY after USER, or --scope")
			}
			return cmdutil.FlagErrorf("want USER ACTION REPOSITORY or USER --scope SCOPE, got %d argument(s)", len(args))
		},
		ValidArgsFunction: cmdutil.CompleteUserThen(f, func(_ context.Context, _ *store.User, args []string) []string {
			if len(args) == 1 {
				return []string{"pull", "push", "pull,push", "delete"}
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := cmdutil.ValidateUsernameArg(o.Username); err != nil {
				return err
			}
			values := slices.Clone(scopes)
			if len(args) == 3 {
				values = append(values, acl.TypeRepository+":"+args[2]+":"+args[1])
			}
			var err error
			if o.Scopes, err = acl.ParseScopes(values); err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			if !cmd.Flags().Changed("service") {
				o.Service = f.Config.GetString("service")
			}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					return cmdutil.FlagErrorf("--ip %q: want an IP address", ip)
				}
				o.IP = a.Unmap().WithZone("")
			}
			if at != "" {
				if o.At, err = when.Parse(at, f.Now()); err != nil {
					return &cmdutil.FlagError{Err: fmt.Errorf("--at: %w", err)}
				}
			}
			if err := cmdutil.CheckOutput(o.Output, cmdutil.FormatText, cmdutil.FormatJSON); err != nil {
				return err
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return explainRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&scopes, "scope", nil, "a scope as the registry requests it, e.g. repository:team/app:pull,push (repeatable)")
	fl.StringVar(&o.Service, "service", "", "service the request is for (default: the configured service)")
	fl.StringVar(&ip, "ip", "", "client IP address, for rules with an ip condition (default: unknown)")
	fl.StringVar(&at, "at", "", "decide at this time instead of now: RFC 3339 date or time, or a duration from now such as 30d")
	cmdutil.AddOutputFlag(cmd, &o.Output, cmdutil.FormatText, cmdutil.FormatJSON)
	return cmd
}

func explainRun(ctx context.Context, o *ExplainOptions) error {
	var res token.Explanation
	err := o.WithStore(ctx, func(st store.Store) error {
		u, err := st.GetUser(ctx, o.Username)
		if err != nil {
			return cmdutil.StoreErr(err, "user "+o.Username)
		}
		rules, err := st.ListRules(ctx)
		if err != nil {
			return cmdutil.StoreErr(err, "rules")
		}
		p, err := acl.Compile(rules)
		if err != nil {
			return fmt.Errorf("the stored rules are invalid, so the token server answers 503 until they are fixed: %w", cmdutil.OneLine(err))
		}
		now := o.At
		if now.IsZero() {
			now = o.Now()
		}
		res = token.Explain(p, u, o.Service, o.Scopes, o.IP, now)
		return nil
	})
	if err != nil {
		return err
	}
	for _, msg := range res.Inconsistent {
		fmt.Fprintf(o.IO.ErrOut, "Warning: please report this bug: %s\n", msg)
	}
	if o.Output == cmdutil.FormatJSON {
		if err := cmdutil.WriteJSON(o.IO.Out, res); err != nil {
			return err
		}
	} else {
		printExplain(o.IO.Out, &res, o.Now(), o.Loc(), o.Colors())
	}
	if !res.Granted {
		return &cmdutil.ExitCodeError{Code: cmdutil.ExitError}
	}
	return nil
}

func printExplain(w io.Writer, r *token.Explanation, now time.Time, loc *time.Location, c cmdutil.Colors) {
	account := r.Account + ": "
	switch r.Status {
	case store.StatusActive:
		account += c.Green("active")
		if r.AccountExpiresAt != nil {
			account += ", expires " + cmdutil.FormatDate(*r.AccountExpiresAt, r.At, loc)
		} else {
			account += ", never expires"
		}
	case store.StatusExpired:
		account += c.Red("expired") + " " + cmdutil.FormatDate(*r.AccountExpiresAt, r.At, loc)
	default:
		account += c.Red(string(r.Status))
	}
	fmt.Fprintf(w, "Account:  %s\n", account)
	if r.Service != "" {
		fmt.Fprintf(w, "Service:  %s\n", r.Service)
	} else {
		fmt.Fprintln(w, "Service:  not set (rules with a service condition do not match; pass --service)")
	}
	if r.IP != "" {
		fmt.Fprintf(w, "Client:   %s\n", r.IP)
	} else {
		fmt.Fprintln(w, "Client:   IP unknown (rules with an ip condition do not match; pass --ip)")
	}
	fmt.Fprintf(w, "Time:     %s\n", cmdutil.FormatDate(r.At, now, loc))

	if r.Status != store.StatusActive {
		fmt.Fprintf(w, "\nThe account is %s: the token server refuses it (401) before any grant or rule is consulted.\n", r.Status)
		if r.Status == store.StatusExpired {
			fmt.Fprintf(w, "Extend it with: regctl user expire %s WHEN\n", r.Account)
		} else {
			fmt.Fprintf(w, "Re-enable it with: regctl user enable %s\n", r.Account)
		}
	}
	for _, sr := range r.Scopes {
		verdict := c.Green("GRANTED")
		if len(sr.Denied) > 0 {
			verdict = c.Red("DENIED")
		}
		fmt.Fprintf(w, "\n%s  %s\n", sr.Scope, verdict)
		if r.Status != store.StatusActive {
			continue
		}
		if len(sr.Steps) == 0 {
			fmt.Fprintln(w, "  the user has no grants and there are no rules")
		}
		for _, st := range sr.Steps {
			if st.Kind == acl.StepRule {
				fmt.Fprintf(w, "  rule %d  %s\n", *st.Seq, st.Pattern)
			} else {
				fmt.Fprintf(w, "  grant %s\n", st.Pattern)
			}
			switch st.Outcome {
			case acl.OutcomeExpired:
				fmt.Fprintf(w, "      skipped: %s\n", st.Reason)
			case acl.OutcomeMatched:
				line := "matched: " + st.Reason
				if !st.Deny {
					line += "; allows " + token.FormatActions(st.Actions)
				}
				fmt.Fprintf(w, "      %s\n", line)
			default:
				fmt.Fprintf(w, "      %s: %s\n", st.Outcome, st.Reason)
			}
		}
		if d := token.DecidingRule(sr.Steps); d != nil {
			if n := r.LaterRules[*d.Seq]; n > 0 {
				fmt.Fprintf(w, "  %d later rule(s) not consulted: the first matching rule decides\n", n)
			}
		}
		for _, a := range sr.Actions {
			if a.Granted {
				fmt.Fprintf(w, "  %s: %s by %s\n", a.Action, c.Green("granted"), strings.Join(a.By, " and "))
			} else {
				fmt.Fprintf(w, "  %s: %s: %s\n", a.Action, c.Red("denied"), a.Reason)
			}
		}
	}
	fmt.Fprintln(w)
	if r.Granted {
		fmt.Fprintf(w, "Decision: %s\n", c.Green("granted"))
		return
	}
	var denied []string
	for _, sr := range r.Scopes {
		if len(sr.Denied) > 0 {
			denied = append(denied, fmt.Sprintf("%s on %s:%s", strings.Join(sr.Denied, ","), sr.Type, sr.Name))
		}
	}
	fmt.Fprintf(w, "Decision: %s %s\n", c.Red("denied"), strings.Join(denied, "; "))
}
