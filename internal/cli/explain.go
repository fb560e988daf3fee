package cli

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
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/token"
	"github.com/regctl/regctl/internal/when"
)

// ACLExplainOptions are `regctl acl explain`'s settings.
type ACLExplainOptions struct {
	Username string
	Scopes   []acl.Scope
	Service  string
	IP       netip.Addr // zero: unknown
	At       time.Time  // zero: now
	Output   string
}

// NewCmdACLExplain builds `regctl acl explain`.
func NewCmdACLExplain(f *Factory, runF func(context.Context, *ACLExplainOptions) error) *cobra.Command {
	var scopes []string
	var ip, at string
	o := &ACLExplainOptions{}
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
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 3, len(args) == 1 && len(scopes) > 0:
				return nil
			case len(args) == 1:
				return flagErrorf("give ACTION and REPOSITORY after USER, or --scope")
			}
			return flagErrorf("want USER ACTION REPOSITORY or USER --scope SCOPE, got %d argument(s)", len(args))
		},
		ValidArgsFunction: completeUserThen(f, func(_ context.Context, _ *store.User, args []string) []string {
			if len(args) == 1 {
				return []string{"pull", "push", "pull,push", "delete"}
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Username = args[0]
			if err := validateUsernameArg(o.Username); err != nil {
				return err
			}
			values := slices.Clone(scopes)
			if len(args) == 3 {
				values = append(values, acl.TypeRepository+":"+args[2]+":"+args[1])
			}
			var err error
			if o.Scopes, err = acl.ParseScopes(values); err != nil {
				return &FlagError{Err: err}
			}
			if !cmd.Flags().Changed("service") {
				o.Service = f.Config.GetString("service")
			}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					return flagErrorf("--ip %q: want an IP address", ip)
				}
				o.IP = a.Unmap().WithZone("")
			}
			if at != "" {
				if o.At, err = when.Parse(at, f.Now()); err != nil {
					return &FlagError{Err: fmt.Errorf("--at: %w", err)}
				}
			}
			if err := checkOutput(o.Output, formatText, formatJSON); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return aclExplainRun(cmd.Context(), f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&scopes, "scope", nil, "a scope as the registry requests it, e.g. repository:team/app:pull,push (repeatable)")
	fl.StringVar(&o.Service, "service", "", "service the request is for (default: the configured service)")
	fl.StringVar(&ip, "ip", "", "client IP address, for rules with an ip condition (default: unknown)")
	fl.StringVar(&at, "at", "", "decide at this time instead of now: RFC 3339 date or time, or a duration from now such as 30d")
	addOutputFlag(cmd, &o.Output, formatText, formatJSON)
	return cmd
}

// explainResult is what explain prints; -o json writes it as is.
type explainResult struct {
	Account          string        `json:"account"`
	Status           store.Status  `json:"status"`
	AccountExpiresAt *time.Time    `json:"account_expires_at"`
	Service          string        `json:"service"`
	IP               string        `json:"ip"` // "" when unknown
	At               time.Time     `json:"at"`
	Granted          bool          `json:"granted"` // every requested action granted
	Scopes           []scopeResult `json:"scopes"`
	// Inconsistent lists scopes whose explanation disagrees with the
	// decision: a bug; the decision (the token server's) is what counts.
	Inconsistent []string `json:"inconsistent,omitempty"`

	laterRules map[int64]int // per deciding seq, how many rules follow it
}

// scopeResult is one requested scope's decision.
type scopeResult struct {
	Scope     string         `json:"scope"` // as requested
	Type      string         `json:"type"`
	Name      string         `json:"name"`
	Requested []string       `json:"requested"`
	Granted   []string       `json:"granted"` // exactly what the token server puts in the token
	Denied    []string       `json:"denied"`
	Actions   []actionResult `json:"actions"`
	Steps     []stepView     `json:"steps"`
}

// actionResult says who allowed an action, or why nobody did.
type actionResult struct {
	Action  string   `json:"action"`
	Granted bool     `json:"granted"`
	By      []string `json:"by,omitempty"`     // "grant team/*", "rule 10"
	Reason  string   `json:"reason,omitempty"` // why it was denied
}

// stepView is one acl.Step.
type stepView struct {
	Kind    string   `json:"kind"`
	Seq     *int64   `json:"seq,omitempty"`
	Pattern string   `json:"pattern"`
	Outcome string   `json:"outcome"`
	Reason  string   `json:"reason"`
	Actions []string `json:"actions,omitempty"`
}

func (s stepView) source() string {
	if s.Kind == acl.StepRule {
		return fmt.Sprintf("rule %d", *s.Seq)
	}
	return "grant " + s.Pattern
}

// explain decides o's request with token.Decide, the token server's own
// decision, and annotates it with the policy's Explanation.
func explain(p *acl.Policy, u *store.User, o *ACLExplainOptions, now time.Time) explainResult {
	res := explainResult{Account: u.Username, AccountExpiresAt: utc(u.ExpiresAt), Service: o.Service,
		At: now.UTC(), Granted: true, laterRules: map[int64]int{}}
	if o.IP.IsValid() {
		res.IP = o.IP.String()
	}
	granted, status := token.Decide(p, u, o.Service, o.Scopes, o.IP, now)
	res.Status = status
	sub := acl.Subject{Account: u.Username, Labels: u.Labels, Grants: u.Grants, IP: o.IP}
	for _, sc := range o.Scopes {
		sr := scopeResult{Scope: sc.String(), Type: sc.Type, Name: sc.Name, Requested: slices.Clone(sc.Actions),
			Granted: []string{}, Denied: []string{}, Steps: []stepView{}}
		for _, g := range granted {
			if g.Type == sc.Type && g.Name == sc.Name {
				sr.Granted = slices.Clone(g.Actions)
			}
		}
		if status == store.StatusActive {
			ex := p.Explain(sub, o.Service, sc, now)
			if !slices.Equal(ex.Granted, sr.Granted) {
				res.Inconsistent = append(res.Inconsistent, fmt.Sprintf("%s: the explanation grants %s but the decision grants %s",
					sc.String(), formatList(ex.Granted), formatList(sr.Granted)))
			}
			for _, st := range ex.Steps {
				v := stepView{Kind: st.Kind, Pattern: st.Pattern, Outcome: st.Outcome, Reason: st.Reason, Actions: st.Actions}
				if st.Kind == acl.StepRule {
					seq := st.Seq
					v.Seq = &seq
				}
				sr.Steps = append(sr.Steps, v)
			}
		}
		for _, a := range sc.Actions {
			ar := actionResult{Action: a, Granted: slices.Contains(sr.Granted, a)}
			if ar.Granted {
				for _, st := range sr.Steps {
					if st.Outcome == acl.OutcomeMatched && slices.Contains(st.Actions, a) {
						ar.By = append(ar.By, st.source())
					}
				}
			} else {
				sr.Denied = append(sr.Denied, a)
				ar.Reason = denyReason(status, sr.Steps)
				res.Granted = false
			}
			sr.Actions = append(sr.Actions, ar)
		}
		res.Scopes = append(res.Scopes, sr)
	}
	for _, sr := range res.Scopes {
		if d := decidingRule(sr.Steps); d != nil {
			for _, r := range p.Rules() {
				if r.Seq > *d.Seq {
					res.laterRules[*d.Seq]++
				}
			}
		}
	}
	return res
}

// decidingRule returns the rule step that matched, if any.
func decidingRule(steps []stepView) *stepView {
	for i := range steps {
		if steps[i].Kind == acl.StepRule && steps[i].Outcome == acl.OutcomeMatched {
			return &steps[i]
		}
	}
	return nil
}

// denyReason says why an action was not granted.
func denyReason(status store.Status, steps []stepView) string {
	if status != store.StatusActive {
		return "the account is " + string(status)
	}
	var parts []string
	if d := decidingRule(steps); d != nil {
		if strings.Contains(d.Reason, "explicit deny") {
			parts = append(parts, fmt.Sprintf("rule %d decides and is an explicit deny", *d.Seq))
		} else if len(d.Actions) == 0 {
			parts = append(parts, fmt.Sprintf("rule %d decides and allows none of the requested actions", *d.Seq))
		} else {
			parts = append(parts, fmt.Sprintf("rule %d decides and allows only %s", *d.Seq, strings.Join(d.Actions, ",")))
		}
	} else {
		parts = append(parts, "no rule matches")
	}
	var grants []string
	hasGrants := false
	for _, st := range steps {
		if st.Kind != acl.StepGrant {
			continue
		}
		hasGrants = true
		if st.Outcome == acl.OutcomeMatched {
			grants = append(grants, fmt.Sprintf("grant %s allows only %s", st.Pattern, formatList(st.Actions)))
		}
	}
	switch {
	case !hasGrants:
		parts = append(parts, "the user has no grants")
	case len(grants) == 0:
		parts = append(parts, "no grant of the user matches")
	default:
		parts = append(parts, grants...)
	}
	return strings.Join(parts, "; ")
}

func formatList(v []string) string {
	if len(v) == 0 {
		return "none of the requested actions"
	}
	return strings.Join(v, ",")
}

func aclExplainRun(ctx context.Context, f *Factory, o *ACLExplainOptions) error {
	var res explainResult
	err := withStore(ctx, f, func(st store.Store) error {
		u, err := st.GetUser(ctx, o.Username)
		if err != nil {
			return storeErr(err, "user "+o.Username)
		}
		rules, err := st.ListRules(ctx)
		if err != nil {
			return storeErr(err, "rules")
		}
		p, err := acl.Compile(rules)
		if err != nil {
			return fmt.Errorf("the stored rules are invalid, so the token server answers 503 until they are fixed: %w", oneLine(err))
		}
		now := o.At
		if now.IsZero() {
			now = f.Now()
		}
		res = explain(p, u, o, now)
		return nil
	})
	if err != nil {
		return err
	}
	for _, msg := range res.Inconsistent {
		fmt.Fprintf(f.IO.ErrOut, "Warning: please report this bug: %s\n", msg)
	}
	if o.Output == formatJSON {
		if err := writeJSON(f.IO.Out, res); err != nil {
			return err
		}
	} else {
		printExplain(f.IO.Out, &res, f.Now(), f.loc(), f.colors())
	}
	if !res.Granted {
		return &exitError{code: ExitError}
	}
	return nil
}

func printExplain(w io.Writer, r *explainResult, now time.Time, loc *time.Location, c colors) {
	account := r.Account + ": "
	switch r.Status {
	case store.StatusActive:
		account += c.green("active")
		if r.AccountExpiresAt != nil {
			account += ", expires " + formatDate(*r.AccountExpiresAt, r.At, loc)
		} else {
			account += ", never expires"
		}
	case store.StatusExpired:
		account += c.red("expired") + " " + formatDate(*r.AccountExpiresAt, r.At, loc)
	default:
		account += c.red(string(r.Status))
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
	fmt.Fprintf(w, "Time:     %s\n", formatDate(r.At, now, loc))

	if r.Status != store.StatusActive {
		fmt.Fprintf(w, "\nThe account is %s: the token server refuses it (401) before any grant or rule is consulted.\n", r.Status)
		if r.Status == store.StatusExpired {
			fmt.Fprintf(w, "Extend it with: regctl user expire %s WHEN\n", r.Account)
		} else {
			fmt.Fprintf(w, "Re-enable it with: regctl user enable %s\n", r.Account)
		}
	}
	for _, sr := range r.Scopes {
		verdict := c.green("GRANTED")
		if len(sr.Denied) > 0 {
			verdict = c.red("DENIED")
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
				if !strings.Contains(st.Reason, "explicit deny") {
					line += "; allows " + formatList(st.Actions)
				}
				fmt.Fprintf(w, "      %s\n", line)
			default:
				fmt.Fprintf(w, "      %s: %s\n", st.Outcome, st.Reason)
			}
		}
		if d := decidingRule(sr.Steps); d != nil {
			if n := r.laterRules[*d.Seq]; n > 0 {
				fmt.Fprintf(w, "  %d later rule(s) not consulted: the first matching rule decides\n", n)
			}
		}
		for _, a := range sr.Actions {
			if a.Granted {
				fmt.Fprintf(w, "  %s: %s by %s\n", a.Action, c.green("granted"), strings.Join(a.By, " and "))
			} else {
				fmt.Fprintf(w, "  %s: %s: %s\n", a.Action, c.red("denied"), a.Reason)
			}
		}
	}
	fmt.Fprintln(w)
	if r.Granted {
		fmt.Fprintf(w, "Decision: %s\n", c.green("granted"))
		return
	}
	var denied []string
	for _, sr := range r.Scopes {
		if len(sr.Denied) > 0 {
			denied = append(denied, fmt.Sprintf("%s on %s:%s", strings.Join(sr.Denied, ","), sr.Type, sr.Name))
		}
	}
	fmt.Fprintf(w, "Decision: %s %s\n", c.red("denied"), strings.Join(denied, "; "))
}
