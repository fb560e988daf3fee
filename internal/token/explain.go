package token

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// Explanation is Decide's decision on one request, with the reasoning of
// the policy's acl.Explanation for each scope: what `regctl acl explain`
// prints (-o json writes it as is).
type Explanation struct {
	Account          string           `json:"account"`
	Status           store.Status     `json:"status"`
	AccountExpiresAt *time.Time       `json:"account_expires_at"`
	Service          string           `json:"service"`
	IP               string           `json:"ip"` // "" when unknown
	At               time.Time        `json:"at"`
	Granted          bool             `json:"granted"` // every requested action granted
	Scopes           []ExplainedScope `json:"scopes"`
	// Inconsistent lists scopes whose explanation disagrees with the
	// decision: a bug; the decision (the token server's) is what counts.
	Inconsistent []string `json:"inconsistent,omitempty"`

	// LaterRules counts, per deciding seq, the rules after it.
	LaterRules map[int64]int `json:"-"`
}

// ExplainedScope is one requested scope's decision.
type ExplainedScope struct {
	Scope     string            `json:"scope"` // as requested
	Type      string            `json:"type"`
	Name      string            `json:"name"`
	Requested []string          `json:"requested"`
	Granted   []string          `json:"granted"` // exactly what the token server puts in the token
	Denied    []string          `json:"denied"`
	Actions   []ExplainedAction `json:"actions"`
	Steps     []ExplainedStep   `json:"steps"`
}

// ExplainedAction says who allowed an action, or why nobody did.
type ExplainedAction struct {
	Action  string   `json:"action"`
	Granted bool     `json:"granted"`
	By      []string `json:"by,omitempty"`     // "grant team/*", "rule 10"
	Reason  string   `json:"reason,omitempty"` // why it was denied
}

// ExplainedStep is one acl.Step.
type ExplainedStep struct {
	Kind    string   `json:"kind"`
	Seq     *int64   `json:"seq,omitempty"`
	Pattern string   `json:"pattern"`
	Outcome string   `json:"outcome"`
	Reason  string   `json:"reason"`
	Actions []string `json:"actions,omitempty"`
	// Deny: the rule matched and is an explicit deny (its actions are
	// []): it allows nothing and stops the search.
	Deny bool `json:"-"`
}

// Source names the grant or rule: "grant team/*", "rule 10".
func (s ExplainedStep) Source() string {
	if s.Kind == acl.StepRule {
		return fmt.Sprintf("rule %d", *s.Seq)
	}
	return "grant " + s.Pattern
}

// Explain decides u's request with Decide, the token server's own
// decision, and annotates it with the policy's acl.Explanation.
func Explain(p *acl.Policy, u *store.User, service string, scopes []acl.Scope, ip netip.Addr, now time.Time) Explanation {
	res := Explanation{Account: u.Username, Service: service,
		At: now.UTC(), Granted: true, LaterRules: map[int64]int{}}
	if u.ExpiresAt != nil {
		t := u.ExpiresAt.UTC()
		res.AccountExpiresAt = &t
	}
	if ip.IsValid() {
		res.IP = ip.String()
	}
	granted, status := Decide(p, u, service, scopes, ip, now)
	rules := p.Rules()
	deny := map[int64]bool{} // the explicit denies
	for _, r := range rules {
		if r.Actions != nil && len(r.Actions) == 0 {
			deny[r.Seq] = true
		}
	}
	res.Status = status
	sub := acl.Subject{Account: u.Username, Labels: u.Labels, Grants: u.Grants, IP: ip}
	for _, sc := range scopes {
		sr := ExplainedScope{Scope: sc.String(), Type: sc.Type, Name: sc.Name, Requested: slices.Clone(sc.Actions),
			Granted: []string{}, Denied: []string{}, Steps: []ExplainedStep{}}
		for _, g := range granted {
			if g.Type == sc.Type && g.Name == sc.Name {
				sr.Granted = slices.Clone(g.Actions)
			}
		}
		if status == store.StatusActive {
			ex := p.Explain(sub, service, sc, now)
			if !slices.Equal(ex.Granted, sr.Granted) {
				res.Inconsistent = append(res.Inconsistent, fmt.Sprintf("%s: the explanation grants %s but the decision grants %s",
					sc.String(), FormatActions(ex.Granted), FormatActions(sr.Granted)))
			}
			for _, st := range ex.Steps {
				v := ExplainedStep{Kind: st.Kind, Pattern: st.Pattern, Outcome: st.Outcome, Reason: st.Reason, Actions: st.Actions}
				if st.Kind == acl.StepRule {
					seq := st.Seq
					v.Seq = &seq
					v.Deny = st.Outcome == acl.OutcomeMatched && deny[seq]
				}
				sr.Steps = append(sr.Steps, v)
			}
		}
		for _, a := range sc.Actions {
			ar := ExplainedAction{Action: a, Granted: slices.Contains(sr.Granted, a)}
			if ar.Granted {
				for _, st := range sr.Steps {
					if st.Outcome == acl.OutcomeMatched && slices.Contains(st.Actions, a) {
						ar.By = append(ar.By, st.Source())
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
		if d := DecidingRule(sr.Steps); d != nil {
			for _, r := range rules {
				if r.Seq > *d.Seq {
					res.LaterRules[*d.Seq]++
				}
			}
		}
	}
	return res
}

// DecidingRule returns the rule step that matched, if any.
func DecidingRule(steps []ExplainedStep) *ExplainedStep {
	for i := range steps {
		if steps[i].Kind == acl.StepRule && steps[i].Outcome == acl.OutcomeMatched {
			return &steps[i]
		}
	}
	return nil
}

// denyReason says why an action was not granted.
func denyReason(status store.Status, steps []ExplainedStep) string {
	if status != store.StatusActive {
		return "the account is " + string(status)
	}
	var parts []string
	if d := DecidingRule(steps); d != nil {
		if d.Deny {
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
			grants = append(grants, fmt.Sprintf("grant %s allows only %s", st.Pattern, FormatActions(st.Actions)))
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

// FormatActions lists actions for people: "pull,push", or "none of the
// requested actions".
func FormatActions(v []string) string {
	if len(v) == 0 {
		return "none of the requested actions"
	}
	return strings.Join(v, ",")
}
