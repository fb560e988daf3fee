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
	_, err := compileRule(&r)
	return err
}

// labelCond is one compiled match.labels entry.
type labelCond struct {
	key string
	pat pattern
}

// compiledRule is a rule ready for evaluation.
type compiledRule struct {
	seq     int64
	account pattern
	typ     pattern
	name    pattern
	service pattern
	hasIP   bool
	ip      netip.Prefix
	labels  []labelCond // sorted by key
	actions []string
	expires *time.Time
}

// compileRule validates and compiles r. The result shares no memory with
// r.
func compileRule(r *Rule) (compiledRule, error) {
	cr := compiledRule{seq: r.Seq}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("rule seq %d: "+format, append([]any{r.Seq}, args...)...))
	}

	if r.Actions == nil {
		fail("actions missing (use [] for an explicit deny)")
	}
	for _, a := range r.Actions {
		if actionBit(a) == 0 {
			fail("unknown action %q (allowed: %s)", clip(a), allowedActionsText)
		}
	}
	cr.actions = slices.Clone(r.Actions)
	if cr.actions == nil && r.Actions != nil {
		cr.actions = []string{}
	}

	field := func(name string, src *string, dst *pattern) {
		if src == nil {
			return
		}
		p, err := compilePattern(*src)
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
		cr.hasIP, cr.ip = true, pf
	}

	keys := make([]string, 0, len(r.Match.Labels))
	for k := range r.Match.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" {
			fail("match.labels: empty label name")
			continue
		}
		p, err := compilePattern(r.Match.Labels[k])
		if err != nil {
			fail("match.labels[%q]: %w", clip(k), err)
			continue
		}
		cr.labels = append(cr.labels, labelCond{key: k, pat: p})
	}

	if r.ExpiresAt != nil {
		t := *r.ExpiresAt
		cr.expires = &t
	}
	if len(errs) > 0 {
		return compiledRule{}, errors.Join(errs...)
	}
	return cr, nil
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
// trailing '/', "//", and malformed globs.
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
