package acl

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Step kinds.
const (
	StepGrant = "grant"
	StepRule  = "rule"
)

// Step outcomes.
const (
	OutcomeMatched = "matched"
	OutcomeNoMatch = "no match"
	OutcomeExpired = "expired"
	// OutcomeOverBudget: trying the rule would have taken the scope past
	// ScopeBudget; the search stops and the rules allow nothing.
	OutcomeOverBudget = "over budget"
	// OutcomeUndecided: a limit kept regctl from telling whether the rule
	// matches (see MaxExpansions and MaxRegexInstructions); the search
	// stops and the rules allow nothing.
	OutcomeUndecided = "undecided"
)

// Explanation is a decision with the reasoning behind it.
type Explanation struct {
	Scope   Scope    // as requested
	Granted []string // the granted actions, exactly as Authorize returns them
	Steps   []Step   // every grant, then every rule up to the deciding one
}

// Step is one grant or rule Explain looked at.
type Step struct {
	// Kind is StepGrant or StepRule.
	Kind string
	// Seq is the rule's seq (rules only).
	Seq int64
	// Pattern is the grant's pattern, or the rule's conditions as
	// "field=pattern" pairs with variables expanded for this request, e.g.
	// "name=test/* | socke* (from ${labels:full-access})".
	Pattern string
	// Outcome is OutcomeMatched, OutcomeNoMatch, OutcomeExpired,
	// OutcomeOverBudget or OutcomeUndecided.
	Outcome string
	// Reason says why, e.g. `account "bob" != "alice"`.
	Reason string
	// Actions are the requested actions this step allowed (nil when it
	// did not match).
	Actions []string
}

// Explain decides one scope exactly as Authorize does — through the same
// evaluation code — and records why. The steps list every grant (matched,
// no match or expired), then every rule in Seq order up to and including
// the first matching one: expired rules it skipped and, for each earlier
// rule, the condition that failed. Rules after the deciding one are not
// listed. The search also stops, failing closed, at a rule the scope's
// budget cannot pay for (OutcomeOverBudget, see ScopeBudget) or cannot
// decide (OutcomeUndecided). Explain is slower than Authorize (it does
// not use the rule index); use it for diagnostics only.
func (p *Policy) Explain(sub Subject, service string, scope Scope, now time.Time) Explanation {
	tr := &trace{requested: scope.Actions, steps: []Step{}}
	granted := p.evaluate([]string{}, &sub, service, &scope, now, tr, true, nil)
	scope.Actions = append([]string(nil), scope.Actions...)
	return Explanation{Scope: scope, Granted: granted, Steps: tr.steps}
}

// trace collects Explain's steps. Its methods do nothing on a nil
// receiver, which is what the hot path passes.
type trace struct {
	requested []string
	steps     []Step
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (tr *trace) grantExpired(g *Grant) {
	if tr == nil {
		return
	}
	tr.steps = append(tr.steps, Step{Kind: StepGrant, Pattern: g.Pattern, Outcome: OutcomeExpired,
		Reason: "expired " + formatTime(*g.ExpiresAt)})
}

func (tr *trace) grantNotRepository(g *Grant) {
	if tr == nil {
		return
	}
	tr.steps = append(tr.steps, Step{Kind: StepGrant, Pattern: g.Pattern, Outcome: OutcomeNoMatch,
		Reason: "grants apply only to repository scopes"})
}

func (tr *trace) grant(g *Grant, sc *Scope, ok bool, err error) {
	if tr == nil {
		return
	}
	st := Step{Kind: StepGrant, Pattern: g.Pattern, Outcome: OutcomeNoMatch}
	switch {
	case err != nil:
		st.Reason = fmt.Sprintf("invalid grant pattern %q: %v", g.Pattern, err)
	case ok:
		st.Outcome = OutcomeMatched
		st.Reason = fmt.Sprintf("name %q matches %q", sc.Name, g.Pattern)
		st.Actions = intersectInto([]string{}, tr.requested, g.Actions, grantAllowsAll(g.Actions))
	default:
		st.Reason = fmt.Sprintf("name %q does not match %q", sc.Name, g.Pattern)
	}
	tr.steps = append(tr.steps, st)
}

func (tr *trace) ruleExpired(cr *compiledRule, ec *evalCtx) {
	if tr == nil {
		return
	}
	tr.steps = append(tr.steps, Step{Kind: StepRule, Seq: cr.seq, Pattern: renderRule(cr, ec),
		Outcome: OutcomeExpired, Reason: "expired " + formatTime(*cr.expiry())})
}

func (tr *trace) ruleOverBudget(cr *compiledRule, ec *evalCtx) {
	if tr == nil {
		return
	}
	tr.steps = append(tr.steps, Step{Kind: StepRule, Seq: cr.seq, Pattern: renderRule(cr, ec), Outcome: OutcomeOverBudget,
		Reason: fmt.Sprintf("deciding this scope would take more than %d steps of pattern matching; fails closed: the rules allow nothing", ScopeBudget)})
}

func (tr *trace) ruleUndecided(cr *compiledRule, ec *evalCtx, why []string) {
	if tr == nil {
		return
	}
	tr.steps = append(tr.steps, Step{Kind: StepRule, Seq: cr.seq, Pattern: renderRule(cr, ec), Outcome: OutcomeUndecided,
		Reason: strings.Join(why, "; ") + "; regctl cannot tell whether this rule matches: fails closed, the rules allow nothing"})
}

func (tr *trace) rule(cr *compiledRule, ec *evalCtx, ok bool, why []string) {
	if tr == nil {
		return
	}
	st := Step{Kind: StepRule, Seq: cr.seq, Pattern: renderRule(cr, ec), Outcome: OutcomeNoMatch}
	if !ok {
		if len(why) > 0 {
			st.Reason = why[len(why)-1]
		}
		tr.steps = append(tr.steps, st)
		return
	}
	st.Outcome = OutcomeMatched
	st.Reason = strings.Join(why, "; ")
	if st.Reason == "" {
		st.Reason = "rule has no conditions"
	}
	switch a := cr.allowed(); {
	case len(a) == 0:
		st.Reason += "; explicit deny: allows nothing and stops the search"
	case MixesAll(a):
		st.Reason += fmt.Sprintf("; actions %s are not exactly [\"*\"]: they allow only the actions listed, \"*\" only a requested \"*\" (as in docker_auth)", quoteAll(a, " "))
	}
	st.Actions = Intersect(tr.requested, cr.allowed())
	tr.steps = append(tr.steps, st)
}

// renderRule shows a rule's conditions with variables expanded for this
// request.
func renderRule(cr *compiledRule, ec *evalCtx) string {
	var parts []string
	add := func(field string, p *pattern) {
		if p != nil {
			parts = append(parts, field+"="+renderPattern(p, ec))
		}
	}
	add("account", cr.account)
	add("type", cr.typ)
	add("name", cr.name)
	add("service", cr.service)
	if cr.extra != nil && cr.extra.hasIP {
		parts = append(parts, "ip="+prefixString(cr.extra.ip))
	}
	for _, lc := range cr.labelConds() {
		add("labels."+lc.key, lc.pat)
	}
	if len(parts) == 0 {
		return "(any)"
	}
	return strings.Join(parts, " ")
}

func renderPattern(p *pattern, ec *evalCtx) string {
	if p.kind != patTmplGlob && p.kind != patTmplRegex {
		return p.src
	}
	exps, st, key := p.expansions(ec)
	switch st {
	case expandNoValues:
		return fmt.Sprintf("%s (no values for label %s)", p.src, key)
	case expandTooMany:
		return fmt.Sprintf("%s (more than %d expansions)", p.src, MaxExpansions)
	}
	return fmt.Sprintf("%s (from %s)", strings.Join(exps, " | "), p.src)
}

func prefixString(pf netip.Prefix) string {
	if pf.IsSingleIP() {
		return pf.Addr().String()
	}
	return pf.String()
}

func quoteAll(list []string, sep string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, sep)
}

// describeField explains one field's result.
func describeField(field string, p *pattern, v string, o outcome, ft *fieldTrace) string {
	ok := o == matched
	switch p.kind {
	case patLiteral:
		if ok {
			return fmt.Sprintf("%s %q == %q", field, v, p.src)
		}
		return fmt.Sprintf("%s %q != %q", field, v, p.src)
	case patGlob, patRegex:
		if ok {
			return fmt.Sprintf("%s %q matches %q", field, v, p.src)
		}
		return fmt.Sprintf("%s %q does not match %q", field, v, p.src)
	}
	return describeTemplated(field, p, v, o, ft)
}

func describeTemplated(field string, p *pattern, v string, o outcome, ft *fieldTrace) string {
	var s string
	switch {
	case ft.prefix != "":
		return fmt.Sprintf("%s %q does not start with %q, as every expansion of %q does", field, v, ft.prefix, p.src)
	case ft.status == expandNoValues:
		return fmt.Sprintf("label %s: user has no values", ft.key)
	case ft.status == expandTooMany:
		return fmt.Sprintf("%s pattern %q expands to more than %d combinations: undecided", field, p.src, MaxExpansions)
	case o == matched:
		s = fmt.Sprintf("%s %q matches %q (from %s)", field, v, ft.tried[len(ft.tried)-1], p.src)
	case o == undecided:
		s = fmt.Sprintf("%s %q: undecided: does not match %s", field, v, quoteAll(ft.tried, " or "))
	default:
		s = fmt.Sprintf("%s %q does not match %s", field, v, quoteAll(ft.tried, " or "))
	}
	if len(ft.bad) > 0 {
		s += "; invalid after substitution: " + strings.Join(ft.bad, "; ")
	}
	return s
}

func describeIP(pf netip.Prefix, ip netip.Addr, ok bool) string {
	switch {
	case !ip.IsValid():
		return fmt.Sprintf("client IP unknown; rule requires ip %s", prefixString(pf))
	case ok:
		return fmt.Sprintf("ip %s in %s", ip, prefixString(pf))
	}
	return fmt.Sprintf("ip %s not in %s", ip, prefixString(pf))
}

func describeLabel(lc *labelCond, vals []string, value string, o outcome, ft *fieldTrace) string {
	switch {
	case len(vals) == 0:
		return fmt.Sprintf("label %s: user has no values", lc.key)
	case ft.prefix != "" && len(ft.tried) == 0:
		return fmt.Sprintf("label %s: none of [%s] starts with %q, as every expansion of %q does", lc.key, quoteAll(vals, " "), ft.prefix, lc.pat.src)
	case ft.status == expandNoValues:
		return fmt.Sprintf("label %s: pattern %q uses label %s: user has no values", lc.key, lc.pat.src, ft.key)
	case ft.status == expandTooMany:
		return fmt.Sprintf("label %s: pattern %q expands to more than %d combinations: undecided", lc.key, lc.pat.src, MaxExpansions)
	case o == matched:
		return fmt.Sprintf("label %s: %q matches %q", lc.key, value, lc.pat.src)
	case o == undecided:
		s := fmt.Sprintf("label %s: undecided: none of [%s] matches %q", lc.key, quoteAll(vals, " "), lc.pat.src)
		if len(ft.bad) > 0 {
			s += "; invalid after substitution: " + strings.Join(ft.bad, "; ")
		}
		return s
	}
	return fmt.Sprintf("label %s: none of [%s] matches %q", lc.key, quoteAll(vals, " "), lc.pat.src)
}
