package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"
)

// matchKeys are the keys a rule's match object may have, in the order
// error messages list them.
var matchKeys = []string{"account", "type", "name", "service", "ip", "labels"}

// ValidateMatchKeys reports an error naming every key that is not one of
// account, type, name, service, ip and labels. Store decoders call it with
// the keys of a decoded match object, so that a typo ("acount") is not
// silently dropped into a rule that matches everyone.
func ValidateMatchKeys(keys []string) error {
	var bad []string
	for _, k := range keys {
		if !slices.Contains(matchKeys, k) && !slices.Contains(bad, k) {
			bad = append(bad, k)
		}
	}
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("unknown match key %q (allowed: %s)", clip(bad[0]), strings.Join(matchKeys, ", "))
	}
	q := make([]string, len(bad))
	for i, k := range bad {
		q[i] = fmt.Sprintf("%q", clip(k))
	}
	return fmt.Errorf("unknown match keys %s (allowed: %s)", strings.Join(q, ", "), strings.Join(matchKeys, ", "))
}

// Validate reports whether the rule is well formed: Actions present (nil
// is an error; [] is an explicit deny) and known; every pattern a valid
// glob or /regex/ using only known variables; match.ip an IP address or
// CIDR prefix. Every error names the rule's seq; several problems are
// joined with errors.Join.
func (r Rule) Validate() error {
	_, err := compileRule(&r, &interner{})
	return err
}

// RuleError is one problem of one rule: "rule seq 10: match.name: ...".
type RuleError struct {
	Seq int64
	Err error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule seq %d: %v", e.Seq, e.Err) }
func (e *RuleError) Unwrap() error { return e.Err }

// labelCond is one compiled match.labels entry.
type labelCond struct {
	key string
	pat *pattern
}

// compiledRule is a rule ready for evaluation, and all a Policy keeps of
// it: rule rebuilds the Rule. A policy holds one per rule, so it is kept
// small: an absent field costs a nil pointer, what rules have in common
// is shared (see interner), and what few rules have lives in extra.
type compiledRule struct {
	seq     int64
	account *pattern // nil: the field is absent and matches anything
	typ     *pattern
	name    *pattern
	service *pattern
	labels  *[]labelCond // sorted by key; nil when there are none
	actions *[]string    // never nil
	extra   *ruleExtra   // nil when the rule has none of it
}

// ruleExtra is the part of a rule that most rules leave out.
type ruleExtra struct {
	hasIP       bool
	hasExpiry   bool
	emptyLabels bool // match.labels is empty but not nil
	ip          netip.Prefix
	ipSrc       string // match.ip as written
	expires     time.Time
	comment     string
}

// compileRule validates and compiles r, taking patterns and actions from
// in. The result shares no memory with r but immutable strings.
func compileRule(r *Rule, in *interner) (compiledRule, error) {
	cr := compiledRule{seq: r.Seq}
	var x ruleExtra
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, &RuleError{Seq: r.Seq, Err: fmt.Errorf(format, args...)})
	}

	if r.Actions == nil {
		fail("actions missing (use [] for an explicit deny)")
	}
	for _, a := range r.Actions {
		if actionBit(a) == 0 {
			fail("unknown action %q (allowed: %s)", clip(a), allowedActionsText)
		}
	}

	field := func(name string, src *string, dst **pattern) {
		if src == nil {
			return
		}
		p, err := in.pattern(*src)
		if err != nil {
			fail("match.%s: %w", name, err)
			return
		}
		*dst = p
	}
	field("account", r.Match.Account, &cr.account)
	field("type", r.Match.Type, &cr.typ)
	field("name", r.Match.Name, &cr.name)
	field("service", r.Match.Service, &cr.service)

	if r.Match.IP != nil {
		pf, err := parseIPMatch(*r.Match.IP)
		if err != nil {
			fail("match.ip: %w", err)
		}
		x.hasIP, x.ip, x.ipSrc = true, pf, *r.Match.IP
	}

	keys := make([]string, 0, len(r.Match.Labels))
	for k := range r.Match.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var labels []labelCond
	for _, k := range keys {
		if k == "" {
			fail("match.labels: empty label name")
			continue
		}
		p, err := in.pattern(r.Match.Labels[k])
		if err != nil {
			fail("match.labels[%q]: %w", clip(k), err)
			continue
		}
		labels = append(labels, labelCond{key: k, pat: p})
	}
	x.emptyLabels = r.Match.Labels != nil && len(r.Match.Labels) == 0

	if r.ExpiresAt != nil {
		x.hasExpiry, x.expires = true, *r.ExpiresAt
	}
	x.comment = r.Comment
	if len(errs) > 0 {
		return compiledRule{}, errors.Join(errs...)
	}
	cr.actions = in.actions(r.Actions)
	if len(labels) > 0 {
		cr.labels = in.labels(labels)
	}
	if x.hasIP || x.hasExpiry || x.emptyLabels || x.comment != "" {
		cr.extra = &x
	}
	return cr, nil
}

// labelConds returns the rule's match.labels conditions, sorted by key.
// They may be shared with other rules: never modify them.
func (cr *compiledRule) labelConds() []labelCond {
	if cr.labels == nil {
		return nil
	}
	return *cr.labels
}

// allowed returns the rule's actions. They may be shared with other rules:
// never modify them.
func (cr *compiledRule) allowed() []string { return *cr.actions }

// expiry returns the rule's expiry, nil when it has none.
func (cr *compiledRule) expiry() *time.Time {
	if cr.extra == nil || !cr.extra.hasExpiry {
		return nil
	}
	return &cr.extra.expires
}

// rule rebuilds the Rule cr was compiled from, sharing no memory with cr
// but immutable strings.
func (cr *compiledRule) rule() Rule {
	r := Rule{Seq: cr.seq, Actions: append([]string{}, cr.allowed()...)}
	src := func(p *pattern) *string {
		if p == nil {
			return nil
		}
		s := p.src
		return &s
	}
	r.Match.Account = src(cr.account)
	r.Match.Type = src(cr.typ)
	r.Match.Name = src(cr.name)
	r.Match.Service = src(cr.service)
	if labels := cr.labelConds(); len(labels) > 0 {
		r.Match.Labels = make(map[string]string, len(labels))
		for _, lc := range labels {
			r.Match.Labels[lc.key] = lc.pat.src
		}
	}
	if x := cr.extra; x != nil {
		if x.hasIP {
			s := x.ipSrc
			r.Match.IP = &s
		}
		if x.emptyLabels {
			r.Match.Labels = map[string]string{}
		}
		if x.hasExpiry {
			t := x.expires
			r.ExpiresAt = &t
		}
		r.Comment = x.comment
	}
	return r
}

// parseIPMatch parses match.ip: an IP address or a CIDR prefix. IPv4
// addresses written in IPv6 form (::ffff:a.b.c.d) are unmapped.
func parseIPMatch(s string) (netip.Prefix, error) {
	if strings.Contains(s, "${") {
		return netip.Prefix{}, fmt.Errorf("%q: variables are not supported in ip", clip(s))
	}
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR prefix: %w", clip(s), err)
		}
		if a := pf.Addr(); a.Is4In6() && pf.Bits() >= 96 {
			pf = netip.PrefixFrom(a.Unmap(), pf.Bits()-96)
		}
		return pf.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR prefix: %w", clip(s), err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: IP zones are not supported", clip(s))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ValidateGrantPattern reports whether p is a usable grant pattern: a glob
// (path.Match syntax, '*' stops at '/') that can match some repository
// name. It rejects the empty pattern, patterns longer than MaxScopeLength,
// uppercase letters, characters outside [a-z0-9._/*?[]-:], a leading or
// trailing '/', "//", malformed globs, and globs that may take more than
// ScopeBudget steps to match a long name (as Compile does for rules).
func ValidateGrantPattern(p string) error {
	if p == "" {
		return errors.New("grant pattern is empty")
	}
	if len(p) > MaxScopeLength {
		return fmt.Errorf("grant pattern %q: longer than %d characters", clip(p), MaxScopeLength)
	}
	for i := 0; i < len(p); i++ {
		ch := p[i]
		switch {
		case isLowerAlnumByte(ch), strings.IndexByte("._/*?[]-:", ch) >= 0:
		case ch >= 'A' && ch <= 'Z':
			return fmt.Errorf("grant pattern %q: uppercase letters never match a repository name", clip(p))
		default:
			return fmt.Errorf("grant pattern %q: invalid character %q (allowed: a-z 0-9 . _ - : / * ? [ ])", clip(p), rune(ch))
		}
	}
	switch {
	case p[0] == '/':
		return fmt.Errorf("grant pattern %q: leading '/' never matches a repository name", clip(p))
	case p[len(p)-1] == '/':
		return fmt.Errorf("grant pattern %q: trailing '/' never matches a repository name", clip(p))
	case strings.Contains(p, "//"):
		return fmt.Errorf("grant pattern %q: \"//\" never matches a repository name", clip(p))
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("grant pattern %q: malformed glob: %w", clip(p), err)
	}
	if n := newGlobCost(p).steps(checkLength); n > ScopeBudget {
		return errTooCostly(fmt.Sprintf("grant pattern %q", clip(p)), n)
	}
	return nil
}

// Validate reports whether the grant has a valid pattern (see
// ValidateGrantPattern) and a non-empty list of known actions.
func (g Grant) Validate() error {
	if err := ValidateGrantPattern(g.Pattern); err != nil {
		return err
	}
	if len(g.Actions) == 0 {
		return fmt.Errorf("grant %q: no actions", clip(g.Pattern))
	}
	for _, a := range g.Actions {
		if actionBit(a) == 0 {
			return fmt.Errorf("grant %q: unknown action %q (allowed: %s)", clip(g.Pattern), clip(a), allowedActionsText)
		}
	}
	return nil
}
