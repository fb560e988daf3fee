package acl

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"
)

// Policy is a compiled, immutable rule set. It is safe for concurrent use.
// A nil *Policy has no rules (grants still apply).
//
// # Decision
//
// For each requested scope the policy computes
//
//	granted = union(what each matching, non-expired grant allows,
//	                what the FIRST matching, non-expired rule allows)
//
// of the requested actions. Grants (Subject.Grants) apply only to scopes
// of type "repository" and match the scope name with path.Match; a grant
// allows the requested actions it lists, or every requested action if it
// lists "*". Rules are tried in Seq order and the first whose every
// condition matches decides; later rules are not consulted. A rule allows
// what Intersect says, as in docker_auth: Actions exactly ["*"] allow
// every requested action, any other list only the requested actions it
// names ("*" among others allows only a requested "*"). A rule with
// Actions [] is an explicit deny: it matches, stops the search, and
// allows nothing — but it never takes away a user's own grants. Expired
// rules and grants (see Expired) are treated as absent.
//
// The search fails closed — it stops, the rules allow nothing, and the
// grants still apply — at a rule regctl cannot decide within its limits,
// or when the scope's budget runs out:
//
//   - A rule is undecided when a condition is (a pattern with more than
//     MaxExpansions combinations of label values, or whose expansions that
//     do not match include one past MaxRegexInstructions) and none surely
//     fails. Whether it would have matched, the rules allow no more than
//     deciding it without the limits would allow.
//   - Deciding one scope may cost at most ScopeBudget steps: each
//     candidate rule tried and each glob or regular expression matched is
//     charged before it runs. Rules that share a pattern share its match
//     within a scope, and each pattern on its own fits the budget (Compile
//     refuses the others), so only a scope that has to try very many rules
//     or costly patterns is cut short.
//
// Explain shows where a search stopped.
type Policy struct {
	rules []compiledRule // sorted by seq

	// Candidate index: every rule is in exactly one of these lists, and a
	// rule outside the lists consulted for a request cannot match it.
	// Each list is a window of cands, so that the index makes a few large
	// allocations rather than one per key.
	byAccount  map[string]window // literal account pattern
	byPrefix   map[string]window // literal prefix of the name pattern
	prefixLens []int             // distinct key lengths of byPrefix, ascending
	byLabel    map[string]window // a label the subject must have values for
	unindexed  []int32
	cands      []int32 // rule positions, ascending within each window

	cache *regexCache
}

// window is the candidate list cands[off:off+n] of a Policy.
type window struct{ off, n int32 }

// Compile validates rules and builds a Policy. Every invalid rule is
// reported (errors joined with errors.Join, each naming its seq), as is a
// seq used twice. Rules are sorted by Seq; the input is not modified and
// not retained.
//
// Matching follows docker_auth with these deliberate differences:
//
//   - A /regex/ pattern is ANCHORED: it must match the whole value, as if
//     written /^(?:...)$/. docker_auth matches regular expressions
//     unanchored, so its /foo/ also matches "xfoo"; ours does not. Whether
//     a pattern is a regex is decided from the pattern as written, before
//     substitution, so a substituted value can never turn a glob into a
//     regex.
//   - Variables are substituted in one pass. In a glob, ${labels:KEY}
//     values are inserted raw (a label value is itself a glob, such as
//     "test/*"), while ${account}, ${name}, ${type} and ${service} have the
//     glob metacharacters * ? [ \ escaped with '\', so an account named
//     "a*" only matches itself. In a regex every value, labels included, is
//     quoted with regexp.QuoteMeta and wrapped in (?:...), so values only
//     ever match literally and /${account}+/ repeats the whole value.
//   - ${labels:KEY} expands over each of the subject's values for KEY; a
//     pattern using several label keys expands over every combination, and
//     a key used twice takes the same value at both places. With no values
//     for a key the pattern matches nothing, and so does an expansion that
//     is not a valid glob or regex (as in docker_auth). A pattern with more
//     than MaxExpansions combinations is undecided (see Policy).
//   - A rule allows what Intersect says, as in docker_auth: only actions
//     exactly ["*"] allow every requested action. Grants are regctl's own:
//     there "*" allows every action wherever it is listed.
//   - A pattern may be at most MaxPatternLength characters, and a regular
//     expression compile to at most MaxRegexInstructions instructions. A
//     pattern that may take more than ScopeBudget steps to match a value
//     as long as the longest repository name is refused (a templated one
//     with every variable one character long), and so is a rule set with
//     such a pattern: a stored rule set that Compile refuses leaves the
//     token server without a policy, failing closed.
//   - Deciding one scope may cost at most ScopeBudget steps, and an
//     undecided rule stops the search; either way the rules allow the
//     scope nothing (see Policy).
//   - match.ip is an IP address or CIDR prefix; a subject without a valid
//     IP never matches a rule that sets ip. IPv4-mapped IPv6 addresses are
//     unmapped and zones dropped before the test.
//   - Rules are always evaluated in Seq order (current docker_auth sorts
//     its MongoDB rules by seq too; older releases used storage order).
func Compile(rules []Rule) (*Policy, error) {
	compiled, err := compileRules(rules)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(compiled, func(a, b compiledRule) int { return cmp.Compare(a.seq, b.seq) })
	p := &Policy{rules: compiled, cache: &regexCache{}}
	p.index()
	return p, nil
}

// compileRules compiles rules in their order, sharing patterns between
// them, and reports every invalid rule and every seq used twice.
func compileRules(rules []Rule) ([]compiledRule, error) {
	var in interner
	var errs []error
	seen := make(map[int64]bool, len(rules))
	compiled := make([]compiledRule, 0, len(rules))
	for i := range rules {
		r := &rules[i]
		cr, err := compileRule(r, &in)
		if err != nil {
			errs = append(errs, err)
		}
		if seen[r.Seq] {
			errs = append(errs, fmt.Errorf("rule seq %d: duplicate seq", r.Seq))
		}
		seen[r.Seq] = true
		if err == nil {
			compiled = append(compiled, cr)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return compiled, nil
}

// Update returns the policy of p's rules with the rules whose seq is in
// removed taken out and the changed rules added, each replacing the rule
// of the same seq if there is one: the policy Compile would build from
// that rule set. Only the changed rules are compiled; the others, with
// their compiled regular expressions, are shared with p, which is not
// modified and stays usable. An invalid or duplicated changed rule is
// reported as Compile reports it. A nil p has no rules.
func (p *Policy) Update(changed []Rule, removed []int64) (*Policy, error) {
	if p == nil {
		return Compile(changed)
	}
	fresh, err := compileRules(changed)
	if err != nil {
		return nil, err
	}
	drop := make(map[int64]bool, len(fresh)+len(removed))
	for _, seq := range removed {
		drop[seq] = true
	}
	for i := range fresh {
		drop[fresh[i].seq] = true
	}
	rules := make([]compiledRule, 0, len(p.rules)+len(fresh))
	for _, cr := range p.rules {
		if !drop[cr.seq] {
			rules = append(rules, cr)
		}
	}
	rules = append(rules, fresh...)
	slices.SortFunc(rules, func(a, b compiledRule) int { return cmp.Compare(a.seq, b.seq) })
	// The regex cache holds expansions by their source, whatever rule
	// made them: still valid.
	np := &Policy{rules: rules, cache: p.cache}
	np.index()
	return np, nil
}

// index builds the candidate index, filing each rule under its most
// selective key. Correctness only needs every key to be necessary for a
// match: a literal account must equal the subject's account, a name must
// start with its pattern's literal prefix, and a label the rule uses must
// have values.
func (p *Policy) index() {
	byAccount := map[string][]int32{}
	byPrefix := map[string][]int32{}
	byLabel := map[string][]int32{}
	var unindexed []int32
	for i := range p.rules {
		cr, pos := &p.rules[i], int32(i)
		if cr.account != nil && cr.account.kind == patLiteral {
			byAccount[cr.account.src] = append(byAccount[cr.account.src], pos)
			continue
		}
		if cr.name != nil {
			if pf := cr.name.prefix(); pf != "" {
				byPrefix[pf] = append(byPrefix[pf], pos)
				continue
			}
		}
		if k := cr.requiredLabel(); k != "" {
			byLabel[k] = append(byLabel[k], pos)
		} else {
			unindexed = append(unindexed, pos)
		}
	}
	p.cands = make([]int32, 0, len(p.rules))
	add := func(list []int32) window {
		w := window{int32(len(p.cands)), int32(len(list))}
		p.cands = append(p.cands, list...)
		return w
	}
	flatten := func(m map[string][]int32) map[string]window {
		out := make(map[string]window, len(m))
		for k, list := range m {
			out[k] = add(list)
		}
		return out
	}
	p.byAccount, p.byPrefix, p.byLabel = flatten(byAccount), flatten(byPrefix), flatten(byLabel)
	p.unindexed = p.candidates(add(unindexed))
	for n := range p.byPrefix {
		if !slices.Contains(p.prefixLens, len(n)) {
			p.prefixLens = append(p.prefixLens, len(n))
		}
	}
	slices.Sort(p.prefixLens)
}

// candidates returns the rule positions in window w.
func (p *Policy) candidates(w window) []int32 {
	return p.cands[w.off : w.off+w.n]
}

// requiredLabel returns a label key the subject must have values for if
// the rule is to match, or "".
func (cr *compiledRule) requiredLabel() string {
	if labels := cr.labelConds(); len(labels) > 0 {
		return labels[0].key
	}
	for _, pt := range []*pattern{cr.name, cr.account, cr.service, cr.typ} {
		if pt != nil && pt.tmpl != nil && len(pt.tmpl.labels) > 0 {
			return pt.tmpl.labels[0]
		}
	}
	return ""
}

// Rules returns a copy of the policy's rules, sorted by Seq.
func (p *Policy) Rules() []Rule {
	if p == nil {
		return []Rule{}
	}
	out := make([]Rule, len(p.rules))
	for i := range p.rules {
		out[i] = p.rules[i].rule()
	}
	return out
}

// Len returns the number of rules.
func (p *Policy) Len() int {
	if p == nil {
		return 0
	}
	return len(p.rules)
}

// Authorize decides every requested scope for sub, a request to service at
// time now. It returns one Scope per requested scope, in order, with Type,
// Class and Name copied and Actions the granted actions (an empty, non-nil
// slice when nothing is granted). See Policy for the decision.
func (p *Policy) Authorize(sub Subject, service string, scopes []Scope, now time.Time) []Scope {
	return p.AuthorizeDecided(sub, service, scopes, now, nil)
}

// AuthorizeDecided is Authorize that also fills dec[i] (when dec is not
// nil; it must then have one entry per scope) with what decided scopes[i],
// as DecidedBy would, at no extra matching cost.
func (p *Policy) AuthorizeDecided(sub Subject, service string, scopes []Scope, now time.Time, dec []Decider) []Scope {
	out := make([]Scope, len(scopes))
	n := 0
	for i := range scopes {
		n += len(scopes[i].Actions)
	}
	// One backing array for every scope's actions; each scope gets a
	// capacity-limited window so appending to one cannot touch another.
	buf := make([]string, 0, n)
	for i := range scopes {
		sc := &scopes[i]
		start := len(buf)
		var d *Decider
		if dec != nil {
			d = &dec[i]
		}
		buf = p.evaluate(buf, &sub, service, sc, now, nil, false, d)
		out[i] = Scope{Type: sc.Type, Class: sc.Class, Name: sc.Name, Actions: buf[start:len(buf):len(buf)]}
	}
	return out
}

// evaluate is the one decision procedure behind Authorize and Explain: it
// appends the granted actions for sc to dst. tr is nil on the hot path.
// linear makes it try every rule in order instead of only the indexed
// candidates; the outcome is the same (Explain uses it to report on every
// rule before the deciding one). d, if not nil, receives what decided.
func (p *Policy) evaluate(dst []string, sub *Subject, service string, sc *Scope, now time.Time, tr *trace, linear bool, d *Decider) []string {
	var abuf [8]string
	allowed := abuf[:0] // what the matching grants and rule list
	all := false        // one of them allows every requested action
	for i := range sub.Grants {
		g := &sub.Grants[i]
		if Expired(g.ExpiresAt, now) {
			tr.grantExpired(g)
			continue
		}
		if sc.Type != TypeRepository {
			tr.grantNotRepository(g)
			continue
		}
		ok, err := path.Match(g.Pattern, sc.Name)
		if ok {
			allowed = append(allowed, g.Actions...)
			all = all || grantAllowsAll(g.Actions)
			if d != nil {
				d.Grants = append(d.Grants, g.Pattern)
			}
		}
		tr.grant(g, sc, ok, err)
	}
	if p != nil && len(p.rules) > 0 {
		ec := newEvalCtx(sub, service, sc, p.cache)
		var cr *compiledRule
		if tr != nil || linear {
			cr = p.firstMatchLinear(&ec, now, tr)
		} else {
			cr = p.firstMatchIndexed(&ec, now)
		}
		if cr != nil {
			allowed = append(allowed, cr.allowed()...)
			all = all || AllowsAll(cr.allowed())
		}
		if d != nil {
			if cr != nil {
				d.Rule, d.HasRule = cr.seq, true
			}
			d.FailedClosed = ec.over || ec.undecided
		}
	}
	return intersectInto(dst, sc.Actions, allowed, all)
}

// firstMatchLinear tries every rule in order. It charges the budget only
// for the rules firstMatchIndexed would try, the others being unable to
// match, so that both stop, and fail closed, at the same rule. It returns
// nil when no rule matches or the budget ran out (ec.over).
func (p *Policy) firstMatchLinear(ec *evalCtx, now time.Time, tr *trace) *compiledRule {
	cand := make([]bool, len(p.rules))
	var lbuf [16][]int32
	for _, l := range p.candidateLists(ec, lbuf[:0]) {
		for _, pos := range l {
			cand[pos] = true
		}
	}
	for i := range p.rules {
		cr := &p.rules[i]
		ec.free = !cand[i]
		if !ec.charge(visitSteps) {
			tr.ruleOverBudget(cr, ec)
			return nil
		}
		if Expired(cr.expiry(), now) {
			ec.free = false
			tr.ruleExpired(cr, ec)
			continue
		}
		var why []string
		var o outcome
		if tr == nil {
			o = cr.matches(ec, nil)
		} else {
			o = cr.matches(ec, &why)
		}
		free := ec.free
		ec.free = false
		switch {
		case ec.over:
			tr.ruleOverBudget(cr, ec)
			return nil
		case o == undecided && !free:
			// (A rule the index skips cannot be undecided: the condition
			// that keeps it out of the index surely fails.)
			ec.undecided = true
			tr.ruleUndecided(cr, ec, why)
			return nil
		}
		tr.rule(cr, ec, o == matched, why)
		if o == matched {
			return cr
		}
	}
	return nil
}

// candidateLists appends to lists the rule positions the index says can
// match, one ascending list per key: those under the subject's account,
// under a prefix of the scope name, under a label the subject has values
// for, and the unindexed ones.
func (p *Policy) candidateLists(ec *evalCtx, lists [][]int32) [][]int32 {
	if w := p.byAccount[ec.account]; w.n > 0 {
		lists = append(lists, p.candidates(w))
	}
	name := ec.scope.Name
	for _, n := range p.prefixLens {
		if n > len(name) {
			break
		}
		if w := p.byPrefix[name[:n]]; w.n > 0 {
			lists = append(lists, p.candidates(w))
		}
	}
	if len(p.byLabel) > 0 {
		for k, v := range ec.labels {
			if len(v) == 0 {
				continue
			}
			if w := p.byLabel[k]; w.n > 0 {
				lists = append(lists, p.candidates(w))
			}
		}
	}
	if len(p.unindexed) > 0 {
		lists = append(lists, p.unindexed)
	}
	return lists
}

// firstMatchIndexed tries, in Seq order, only the rules the index says
// can match (see candidateLists). It returns nil when no rule matches or
// the budget ran out (ec.over).
func (p *Policy) firstMatchIndexed(ec *evalCtx, now time.Time) *compiledRule {
	var lbuf [16][]int32
	lists := p.candidateLists(ec, lbuf[:0])
	for {
		best := -1
		var pos int32
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0] < pos) {
				best, pos = i, l[0]
			}
		}
		if best < 0 {
			return nil
		}
		lists[best] = lists[best][1:]
		cr := &p.rules[pos]
		if !ec.charge(visitSteps) {
			return nil
		}
		if Expired(cr.expiry(), now) {
			continue
		}
		switch cr.matches(ec, nil) {
		case matched:
			return cr
		case undecided:
			ec.undecided = true
			return nil
		}
		if ec.over {
			return nil
		}
	}
}

// matches reports whether every condition of the rule holds: matched if
// all do, noMatch if one does not (or the budget ran out), and otherwise
// undecided. A condition that is undecided does not stop the others, so
// that one that surely fails makes the rule a noMatch whatever the
// limits. With why non-nil it appends a clause per condition checked; on
// noMatch the last clause says why.
func (cr *compiledRule) matches(ec *evalCtx, why *[]string) outcome {
	res := matched
	next := func(o outcome) bool {
		if o == undecided {
			res = undecided
		}
		return o != noMatch && !ec.over
	}
	if next(matchField("type", cr.typ, ec.scope.Type, ec, why)) &&
		next(matchField("account", cr.account, ec.account, ec, why)) &&
		next(matchField("service", cr.service, ec.service, ec, why)) &&
		next(cr.matchIP(ec, why)) &&
		next(matchField("name", cr.name, ec.scope.Name, ec, why)) &&
		next(cr.matchLabels(ec, why)) {
		return res
	}
	return noMatch
}

// matchField matches v against an optional pattern (nil matches anything).
func matchField(field string, p *pattern, v string, ec *evalCtx, why *[]string) outcome {
	if p == nil {
		return matched
	}
	if why == nil {
		return p.matchValue(v, ec, nil)
	}
	var ft fieldTrace
	o := p.matchValue(v, ec, &ft)
	*why = append(*why, describeField(field, p, v, o, &ft))
	return o
}

func (cr *compiledRule) matchIP(ec *evalCtx, why *[]string) outcome {
	if cr.extra == nil || !cr.extra.hasIP {
		return matched
	}
	pf, ip := cr.extra.ip, ec.ip
	ok := ip.IsValid() && pf.Contains(ip.Unmap().WithZone(""))
	if why != nil {
		*why = append(*why, describeIP(pf, ip, ok))
	}
	if ok {
		return matched
	}
	return noMatch
}

// matchLabels matches the rule's label conditions: each needs one of the
// subject's values for its key to match.
func (cr *compiledRule) matchLabels(ec *evalCtx, why *[]string) outcome {
	res := matched
	labels := cr.labelConds()
	for i := range labels {
		lc := &labels[i]
		vals := ec.labels[lc.key]
		var ft *fieldTrace
		if why != nil {
			ft = &fieldTrace{}
		}
		o, value := noMatch, ""
		for _, v := range vals {
			switch lc.pat.matchValue(v, ec, ft) {
			case matched:
				o, value = matched, v
			case undecided:
				o = undecided
			}
			if o == matched || ec.over {
				break
			}
		}
		if why != nil {
			*why = append(*why, describeLabel(lc, vals, value, o, ft))
		}
		switch o {
		case noMatch:
			return noMatch
		case undecided:
			res = undecided
		}
	}
	return res
}
