package acl

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
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
//	allowed = union(actions of every matching, non-expired grant,
//	                actions of the FIRST matching, non-expired rule)
//	granted = Intersect(requested actions, allowed)
//
// Grants (Subject.Grants) apply only to scopes of type "repository" and
// match the scope name with path.Match. Rules are tried in Seq order and
// the first whose every condition matches decides; later rules are not
// consulted. A rule with Actions ["*"] allows every requested action; a
// rule with Actions [] is an explicit deny: it matches, stops the search,
// and allows nothing — but it never takes away a user's own grants.
// Expired rules and grants (see Expired) are treated as absent.
type Policy struct {
	src   []Rule // sorted deep copies, for Rules
	rules []compiledRule

	// Candidate index: every rule is in exactly one of these, and a rule
	// outside the lists consulted for a request cannot match it.
	byAccount  map[string][]int32 // literal account pattern
	byPrefix   map[string][]int32 // literal prefix of the name pattern
	prefixLens []int              // distinct key lengths of byPrefix, ascending
	byLabel    map[string][]int32 // a label the subject must have values for
	unindexed  []int32

	cache *regexCache
}

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
//     for a key the pattern matches nothing. A pattern with more than
//     MaxExpansions combinations matches nothing, and so does an expansion
//     that is not a valid glob or regex (fail closed).
//   - A regular expression may compile to at most MaxRegexInstructions
//     instructions, which bounds the cost of matching it; a pattern may be
//     at most MaxPatternLength characters.
//   - match.ip is an IP address or CIDR prefix; a subject without a valid
//     IP never matches a rule that sets ip. IPv4-mapped IPv6 addresses are
//     unmapped and zones dropped before the test.
//   - Rules are always evaluated in Seq order (docker_auth's Mongo backend
//     does not sort them).
func Compile(rules []Rule) (*Policy, error) {
	p := &Policy{
		byAccount: map[string][]int32{},
		byPrefix:  map[string][]int32{},
		byLabel:   map[string][]int32{},
		cache:     &regexCache{},
	}
	var errs []error
	seen := make(map[int64]bool, len(rules))
	type item struct {
		src Rule
		cr  compiledRule
	}
	items := make([]item, 0, len(rules))
	for i := range rules {
		r := &rules[i]
		cr, err := compileRule(r)
		if err != nil {
			errs = append(errs, err)
		}
		if seen[r.Seq] {
			errs = append(errs, fmt.Errorf("rule seq %d: duplicate seq", r.Seq))
		}
		seen[r.Seq] = true
		if err == nil {
			items = append(items, item{copyRule(r), cr})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.src.Seq, b.src.Seq) })

	p.src = make([]Rule, len(items))
	p.rules = make([]compiledRule, len(items))
	for i, it := range items {
		p.src[i], p.rules[i] = it.src, it.cr
		p.index(int32(i))
	}
	for n := range p.byPrefix {
		if !slices.Contains(p.prefixLens, len(n)) {
			p.prefixLens = append(p.prefixLens, len(n))
		}
	}
	slices.Sort(p.prefixLens)
	p.shareRegexps()
	return p, nil
}

// index files rule i under its most selective key. Correctness only needs
// every key to be necessary for a match: a literal account must equal the
// subject's account, a name must start with its pattern's literal prefix,
// and a label the rule uses must have values.
func (p *Policy) index(i int32) {
	cr := &p.rules[i]
	switch {
	case cr.account.kind == patLiteral:
		p.byAccount[cr.account.src] = append(p.byAccount[cr.account.src], i)
	case cr.name.prefix != "":
		p.byPrefix[cr.name.prefix] = append(p.byPrefix[cr.name.prefix], i)
	default:
		if k := cr.requiredLabel(); k != "" {
			p.byLabel[k] = append(p.byLabel[k], i)
		} else {
			p.unindexed = append(p.unindexed, i)
		}
	}
}

// requiredLabel returns a label key the subject must have values for if
// the rule is to match, or "".
func (cr *compiledRule) requiredLabel() string {
	if len(cr.labels) > 0 {
		return cr.labels[0].key
	}
	for _, pt := range []*pattern{&cr.name, &cr.account, &cr.service, &cr.typ} {
		if len(pt.labels) > 0 {
			return pt.labels[0]
		}
	}
	return ""
}

func copyRule(r *Rule) Rule {
	c := *r
	cp := func(s *string) *string {
		if s == nil {
			return nil
		}
		v := *s
		return &v
	}
	c.Match.Account = cp(r.Match.Account)
	c.Match.Type = cp(r.Match.Type)
	c.Match.Name = cp(r.Match.Name)
	c.Match.Service = cp(r.Match.Service)
	c.Match.IP = cp(r.Match.IP)
	c.Match.Labels = maps.Clone(r.Match.Labels)
	if r.Actions != nil {
		c.Actions = append([]string{}, r.Actions...)
	}
	if r.ExpiresAt != nil {
		t := *r.ExpiresAt
		c.ExpiresAt = &t
	}
	return c
}

// Rules returns a copy of the policy's rules, sorted by Seq.
func (p *Policy) Rules() []Rule {
	if p == nil {
		return []Rule{}
	}
	out := make([]Rule, len(p.src))
	for i := range p.src {
		out[i] = copyRule(&p.src[i])
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
		buf = p.evaluate(buf, &sub, service, sc, now, nil, false)
		out[i] = Scope{Type: sc.Type, Class: sc.Class, Name: sc.Name, Actions: buf[start:len(buf):len(buf)]}
	}
	return out
}

// evaluate is the one decision procedure behind Authorize and Explain: it
// appends the granted actions for sc to dst. tr is nil on the hot path.
// linear makes it try every rule in order instead of only the indexed
// candidates; the outcome is the same (Explain uses it to report on every
// rule before the deciding one).
func (p *Policy) evaluate(dst []string, sub *Subject, service string, sc *Scope, now time.Time, tr *trace, linear bool) []string {
	var abuf [8]string
	allowed := abuf[:0]
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
		}
		tr.grant(g, sc, ok, err)
	}
	if p != nil && len(p.rules) > 0 {
		ec := evalCtx{account: sub.Account, labels: sub.Labels, ip: sub.IP, service: service, scope: sc, cache: p.cache}
		var cr *compiledRule
		if tr != nil || linear {
			cr = p.firstMatchLinear(&ec, now, tr)
		} else {
			cr = p.firstMatchIndexed(&ec, now)
		}
		if cr != nil {
			allowed = append(allowed, cr.actions...)
		}
	}
	return intersectInto(dst, sc.Actions, allowed)
}

// firstMatchLinear tries every rule in order.
func (p *Policy) firstMatchLinear(ec *evalCtx, now time.Time, tr *trace) *compiledRule {
	for i := range p.rules {
		cr := &p.rules[i]
		if Expired(cr.expires, now) {
			tr.ruleExpired(cr, ec)
			continue
		}
		if tr == nil {
			if cr.matches(ec, nil) {
				return cr
			}
			continue
		}
		var why []string
		ok := cr.matches(ec, &why)
		tr.rule(cr, ec, ok, why)
		if ok {
			return cr
		}
	}
	return nil
}

// firstMatchIndexed tries, in Seq order, only the rules the index says
// can match: those under the subject's account, under a prefix of the
// scope name, under a label the subject has values for, and the
// unindexed ones.
func (p *Policy) firstMatchIndexed(ec *evalCtx, now time.Time) *compiledRule {
	var lbuf [16][]int32
	lists := lbuf[:0]
	if l := p.byAccount[ec.account]; len(l) > 0 {
		lists = append(lists, l)
	}
	name := ec.scope.Name
	for _, n := range p.prefixLens {
		if n > len(name) {
			break
		}
		if l := p.byPrefix[name[:n]]; len(l) > 0 {
			lists = append(lists, l)
		}
	}
	if len(p.byLabel) > 0 {
		for k, v := range ec.labels {
			if len(v) == 0 {
				continue
			}
			if l := p.byLabel[k]; len(l) > 0 {
				lists = append(lists, l)
			}
		}
	}
	if len(p.unindexed) > 0 {
		lists = append(lists, p.unindexed)
	}
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
		if !Expired(cr.expires, now) && cr.matches(ec, nil) {
			return cr
		}
	}
}

// matches reports whether every condition of the rule holds. With why
// non-nil it appends a clause per condition checked; on failure the last
// clause says why.
func (cr *compiledRule) matches(ec *evalCtx, why *[]string) bool {
	return matchField("type", &cr.typ, ec.scope.Type, ec, why) &&
		matchField("account", &cr.account, ec.account, ec, why) &&
		matchField("service", &cr.service, ec.service, ec, why) &&
		cr.matchIP(ec, why) &&
		matchField("name", &cr.name, ec.scope.Name, ec, why) &&
		cr.matchLabels(ec, why)
}

func matchField(field string, p *pattern, v string, ec *evalCtx, why *[]string) bool {
	if why == nil || p.kind == patAny {
		return p.matchValue(v, ec, nil)
	}
	var ft fieldTrace
	ok := p.matchValue(v, ec, &ft)
	*why = append(*why, describeField(field, p, v, ok, &ft))
	return ok
}

func (cr *compiledRule) matchIP(ec *evalCtx, why *[]string) bool {
	if !cr.hasIP {
		return true
	}
	ip := ec.ip
	ok := ip.IsValid() && cr.ip.Contains(ip.Unmap().WithZone(""))
	if why != nil {
		*why = append(*why, describeIP(cr, ip, ok))
	}
	return ok
}

func (cr *compiledRule) matchLabels(ec *evalCtx, why *[]string) bool {
	for i := range cr.labels {
		lc := &cr.labels[i]
		vals := ec.labels[lc.key]
		var ft *fieldTrace
		if why != nil {
			ft = &fieldTrace{}
		}
		ok, matched := false, ""
		for _, v := range vals {
			if lc.pat.matchValue(v, ec, ft) {
				ok, matched = true, v
				break
			}
		}
		if why != nil {
			*why = append(*why, describeLabel(lc, vals, matched, ok, ft))
		}
		if !ok {
			return false
		}
	}
	return true
}
