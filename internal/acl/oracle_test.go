package acl

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var aclCases = flag.Int("acl.cases", 10000, "number of random cases TestAgainstOracle compares")

// The oracle is a deliberately naive second implementation of the policy:
// no compilation, no index, a linear scan over a sorted copy of the rules,
// every pattern expanded with strings.Replacer and recompiled on every use.

var oracleLabelVar = regexp.MustCompile(`\$\{labels:([^}]*)\}`)

func oracleAuthorize(rules []Rule, sub Subject, service string, sc Scope, now time.Time) []string {
	alive := func(exp *time.Time) bool { return exp == nil || now.Before(*exp) }
	granted := map[string]bool{}
	if sc.Type == "repository" {
		for _, g := range sub.Grants {
			if ok, _ := path.Match(g.Pattern, sc.Name); ok && alive(g.ExpiresAt) {
				// A grant listing "*" allows everything requested.
				for _, a := range sc.Actions {
					for _, b := range g.Actions {
						if b == "*" || a == b {
							granted[a] = true
						}
					}
				}
			}
		}
	}
	sorted := append([]Rule(nil), rules...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Seq < sorted[j].Seq })
	for _, r := range sorted {
		if !alive(r.ExpiresAt) {
			continue
		}
		o := oracleRule(r, sub, service, sc)
		if o == oYes {
			for _, a := range dockerAuthActions(sc.Actions, r.Actions) {
				granted[a] = true
			}
		}
		if o != oNo {
			break // decided, or undecided: the rules allow nothing
		}
	}
	out := []string{}
	for _, a := range sc.Actions {
		if granted[a] && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// dockerAuthActions is what docker_auth's aclAuthorizer.Authorize returns
// for a matching entry (auth_server/authz/acl.go):
//
//	if len(*e.Actions) == 1 && (*e.Actions)[0] == "*" {
//		return ai.Actions, nil
//	}
//	return StringSetIntersection(ai.Actions, *e.Actions), nil
//
// StringSetIntersection makes sets of both and returns their intersection
// sorted; the order does not matter here.
func dockerAuthActions(requested, actions []string) []string {
	if len(actions) == 1 && actions[0] == "*" {
		return requested
	}
	set := map[string]bool{}
	for _, a := range actions {
		set[a] = true
	}
	var out []string
	for _, a := range requested {
		if set[a] {
			out = append(out, a)
		}
	}
	return out
}

// Outcomes of the oracle's matching, as in outcome: a rule or pattern
// matches, does not, or cannot be decided within the limits; a rule with
// a condition that does not match does not match, whatever the others.
const (
	oNo = iota
	oYes
	oUndecided
)

func oracleRule(r Rule, sub Subject, service string, sc Scope) int {
	m := r.Match
	res := oYes
	and := func(o int) {
		switch {
		case o == oNo || res == oNo:
			res = oNo
		case o == oUndecided:
			res = oUndecided
		}
	}
	and(oracleMatch(m.Account, sub.Account, sub, service, sc))
	and(oracleMatch(m.Type, sc.Type, sub, service, sc))
	and(oracleMatch(m.Name, sc.Name, sub, service, sc))
	and(oracleMatch(m.Service, service, sub, service, sc))
	if m.IP != nil {
		ok := sub.IP.IsValid()
		if ok {
			ip := net.IP(sub.IP.AsSlice())
			if strings.Contains(*m.IP, "/") {
				_, n, err := net.ParseCIDR(*m.IP)
				ok = err == nil && n.Contains(ip)
			} else {
				ok = net.ParseIP(*m.IP).Equal(ip)
			}
		}
		if !ok {
			and(oNo)
		}
	}
	for k, pat := range m.Labels {
		// One value that matches is enough; else one undecided leaves
		// the condition undecided.
		found := oNo
		for _, v := range sub.Labels[k] {
			if o := oracleMatch(&pat, v, sub, service, sc); o == oYes || found == oNo {
				found = o
			}
		}
		and(found)
	}
	return res
}

func oracleMatch(pp *string, value string, sub Subject, service string, sc Scope) int {
	if pp == nil {
		return oYes
	}
	p := *pp
	isRe := len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/'
	if isRe {
		p = p[1 : len(p)-1]
	}
	var keys []string
	for _, m := range oracleLabelVar.FindAllStringSubmatch(p, -1) {
		if !contains(keys, m[1]) {
			keys = append(keys, m[1])
		}
	}
	total := 1
	for _, k := range keys {
		if len(sub.Labels[k]) == 0 {
			return oNo // no expansion at all
		}
	}
	if !isRe && strings.Contains(p, "${") {
		// Every expansion of a glob starts with its text before the
		// first variable or metacharacter.
		lit := p[:strings.Index(p, "${")]
		if i := strings.IndexAny(lit, `*?[\`); i >= 0 {
			lit = lit[:i]
		}
		if !strings.HasPrefix(value, lit) {
			return oNo
		}
	}
	for _, k := range keys {
		total *= len(sub.Labels[k])
		if total > 256 {
			return oUndecided
		}
	}
	plain := func(v string) string {
		if isRe {
			return "(?:" + regexp.QuoteMeta(v) + ")"
		}
		for _, c := range `\*?[` {
			v = strings.ReplaceAll(v, string(c), `\`+string(c))
		}
		return v
	}
	res := oNo
	for i := range total {
		pairs := []string{
			"${account}", plain(sub.Account), "${name}", plain(sc.Name),
			"${type}", plain(sc.Type), "${service}", plain(service),
		}
		n := i
		for _, k := range keys {
			vals := sub.Labels[k]
			v := vals[n%len(vals)]
			n /= len(vals)
			if isRe {
				v = plain(v)
			}
			pairs = append(pairs, "${labels:"+k+"}", v)
		}
		s := strings.NewReplacer(pairs...).Replace(p)
		if isRe {
			if _, err := syntax.Parse(s, syntax.Perl); err != nil {
				continue
			}
			full := "^(?:" + s + ")$"
			if parsed, err := syntax.Parse(full, syntax.Perl); err != nil {
				continue
			} else if prog, err := syntax.Compile(parsed.Simplify()); err != nil {
				continue
			} else if len(prog.Inst) > MaxRegexInstructions {
				res = oUndecided // too complex to try
				continue
			}
			if re, err := regexp.Compile(full); err == nil && re.MatchString(value) {
				return oYes
			}
		} else if ok, _ := path.Match(s, value); ok {
			return oYes
		}
	}
	return res
}

// Random inputs.

var (
	rAccounts = []string{"", "alice", "bob", "admin", "a*b", "a.b", "waldi", "team-a"}
	rNames    = []string{"test/app", "socke1", "prod/app", "alice/app", "bob/lib", "a.b/x", "axb/x", "hello-world",
		"catalog", "team-a/dev-web", "a*b/x", "foo", "xfoo", "test/app/sub", "localhost:5000/test/app", "te", "t"}
	rServices  = []string{"", "reg.example.com", "other"}
	rLabelKeys = []string{"full-access", "read-only-access", "team", "tier"}
	rLabelVals = []string{"test/*", "socke*", "prod/*", "a", "dev", "team-a", "[", "alice/*", "*", "x.y", "web", "test/app", `a\`}
	rPatterns  = []string{"", "alice", "bob", "a*", "*", "/.+/", "/a.*/", "/foo/", "${account}", "${account}/*",
		"${labels:full-access}", "${labels:read-only-access}", "${labels:team}/*", "${labels:team}/dev-${labels:tier}",
		"test/*", `/test\/.*/`, `/${account}\/.+/`, "/${labels:team}.*/", "*/*", "prod/app", "team-*/dev-*",
		"hello-world", "catalog", "${name}", "/(dev|prod|test)\\/app/", "socke[0-9]", "/[a-z]+/", "${type}",
		"${service}", "repository", "registry", "reg.example.com", "t*", "te", "/te(st)?\\/app/", "/(?i)TEST\\/APP/",
		"${labels:tier}", "/${labels:team}/", "${account}${labels:tier}", "//", "/", "[ab]*"}
	rIPs       = []string{"10.0.0.0/8", "10.1.2.3", "192.168.0.0/16", "::1", "2001:db8::/32", "0.0.0.0/0"}
	rSubIPs    = []string{"", "10.1.2.3", "192.168.5.5", "::ffff:10.1.2.3", "2001:db8::1", "::1", "8.8.8.8"}
	rGrantPats = []string{"test/*", "prod/*", "*", "*/*", "alice/app", "[", "hello-world", "socke?", "team-a/*"}
)

func pick[T any](r *rand.Rand, list []T) T { return list[r.IntN(len(list))] }

func randActions(r *rand.Rand, allowEmpty bool) []string {
	for {
		var out []string
		for _, a := range canonicalActions {
			if r.IntN(3) == 0 {
				out = append(out, a)
			}
		}
		if out == nil {
			out = []string{}
		}
		if len(out) > 0 || allowEmpty {
			return out
		}
	}
}

func randExpiry(r *rand.Rand, now time.Time) *time.Time {
	switch r.IntN(6) {
	case 0:
		return tp(now.Add(-time.Hour))
	case 1:
		return tp(now)
	case 2:
		return tp(now.Add(time.Hour))
	}
	return nil
}

func randPattern(r *rand.Rand) *string {
	if r.IntN(2) == 0 {
		return nil
	}
	return sp(pick(r, rPatterns))
}

func randRule(r *rand.Rand, seq int64, now time.Time) Rule {
	ru := Rule{Seq: seq, Actions: randActions(r, true), ExpiresAt: randExpiry(r, now)}
	if r.IntN(3) == 0 {
		ru.Match.Account = sp(pick(r, rAccounts))
	} else {
		ru.Match.Account = randPattern(r)
	}
	ru.Match.Name = randPattern(r)
	if r.IntN(4) == 0 {
		ru.Match.Type = sp(pick(r, []string{"repository", "registry", "/re.*/", "*"}))
	}
	if r.IntN(5) == 0 {
		ru.Match.Service = randPattern(r)
	}
	if r.IntN(6) == 0 {
		ru.Match.IP = sp(pick(r, rIPs))
	}
	if r.IntN(4) == 0 {
		ru.Match.Labels = map[string]string{}
		for range 1 + r.IntN(2) {
			ru.Match.Labels[pick(r, rLabelKeys)] = *sp(pick(r, rPatterns))
		}
	}
	return ru
}

func randSubject(r *rand.Rand, now time.Time) Subject {
	sub := Subject{Account: pick(r, rAccounts)}
	if ip := pick(r, rSubIPs); ip != "" {
		sub.IP = netip.MustParseAddr(ip)
	}
	if r.IntN(4) != 0 {
		sub.Labels = map[string][]string{}
		for _, k := range rLabelKeys {
			switch r.IntN(4) {
			case 0:
			case 1:
				sub.Labels[k] = []string{}
			default:
				n := 1 + r.IntN(3)
				if r.IntN(20) == 0 {
					n = 17 // large enough that two such keys exceed MaxExpansions
				}
				for range n {
					sub.Labels[k] = append(sub.Labels[k], pick(r, rLabelVals))
				}
			}
		}
	}
	for range r.IntN(3) {
		sub.Grants = append(sub.Grants, Grant{Pattern: pick(r, rGrantPats), Actions: randActions(r, false), ExpiresAt: randExpiry(r, now)})
	}
	return sub
}

func randScope(r *rand.Rand) Scope {
	if r.IntN(10) == 0 {
		return Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}
	}
	return Scope{Type: "repository", Name: pick(r, rNames), Actions: randActions(r, false)}
}

type randCase struct {
	rules   []Rule
	sub     Subject
	service string
	scope   Scope
	now     time.Time
}

// theme is a focused vocabulary: drawing everything from a small related
// set makes the interesting coincidences (an escaped account meeting a
// name it would match unescaped, a label product just over the bound)
// frequent instead of one in a million.
type theme struct {
	accounts, names, patterns []string
	labels                    func(r *rand.Rand) map[string][]string
}

var themes = []theme{
	{ // escaping of substituted values
		accounts: []string{"a*b", "a.b", "a?", "a[b", "a\b", "ab", "axb"},
		names:    []string{"axb/x", "a*b/x", "a.b/x", "a?/x", "ab/x", "a[b/x", "a\b/x", "axb", "a.b", "ab"},
		patterns: []string{"${account}/*", `/${account}\/.+/`, "${account}*", "/${account}.*/", "${name}", "/${name}/",
			"${account}", "/${account}/", "${labels:team}/*", `/${labels:team}\/.*/`},
		labels: func(r *rand.Rand) map[string][]string {
			return map[string][]string{"team": {pick(r, []string{"a*b", "a.b", "a?", "a[b", "ab"})}}
		},
	},
	{ // label combinations and the expansion bound
		accounts: []string{"dev", "web", "v1"},
		names:    []string{"dev/web", "dev/dev", "web/dev", "v3/v7", "v15/v16", "v16/v15", "v16/v16", "v0/v0", "dev-web", "v15-v15"},
		patterns: []string{"${labels:team}/${labels:tier}", "${labels:team}/${labels:team}", `/${labels:team}\/${labels:tier}/`,
			"${labels:team}-*", "${labels:tier}/${labels:team}", "${labels:team}-${labels:team}", "/${labels:tier}-${labels:tier}/",
			"${account}/${labels:tier}", "${labels:team}/*"},
		labels: func(r *rand.Rand) map[string][]string {
			m := map[string][]string{}
			for _, k := range []string{"team", "tier"} {
				n := pick(r, []int{0, 1, 2, 3, 15, 16, 17, 20})
				for i := range n {
					m[k] = append(m[k], fmt.Sprintf("v%d", i))
				}
				if n > 0 && r.IntN(2) == 0 {
					m[k][r.IntN(n)] = pick(r, []string{"dev", "web"})
				}
			}
			return m
		},
	},
}

func randomCase(r *rand.Rand) randCase {
	now := now0.Add(time.Duration(r.IntN(1000)) * time.Second)
	n := r.IntN(13)
	if r.IntN(20) == 0 {
		n = 50 + r.IntN(150)
	}
	seqs := r.Perm(n + 5)
	rules := make([]Rule, n)
	for i := range rules {
		rules[i] = randRule(r, int64(seqs[i]-2), now)
	}
	c := randCase{rules: rules, sub: randSubject(r, now), service: pick(r, rServices), scope: randScope(r), now: now}
	if r.IntN(2) == 0 {
		th := pick(r, themes)
		c.sub.Account = pick(r, th.accounts)
		c.sub.Labels = th.labels(r)
		if c.scope.Type == TypeRepository {
			c.scope.Name = pick(r, th.names)
		}
		for i := range c.rules {
			m := &c.rules[i].Match
			if r.IntN(2) == 0 {
				m.Name = sp(pick(r, th.patterns))
			}
			if m.Account != nil && r.IntN(2) == 0 {
				m.Account = sp(pick(r, append(th.patterns, "ab", "a.b", "/a.b/", "a*")))
			}
			if r.IntN(2) == 0 {
				m.Labels = nil
			}
		}
	}
	return c
}

func TestAgainstOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	stats := map[string]int{}
	for i := range *aclCases {
		c := randomCase(r)
		p, err := Compile(c.rules)
		if err != nil {
			t.Fatalf("case %d: Compile: %v", i, err)
		}
		want := oracleAuthorize(c.rules, c.sub, c.service, c.scope, c.now)
		got := p.Authorize(c.sub, c.service, []Scope{c.scope}, c.now)[0].Actions
		ex := p.Explain(c.sub, c.service, c.scope, c.now)
		sub := c.sub
		linear := p.evaluate([]string{}, &sub, c.service, &c.scope, c.now, nil, true, nil)
		if overBudget(ex) {
			// The scope ran out of budget and failed closed: the oracle
			// knows no budget, and may grant more.
			stats["over budget"]++
			want = subsetOf(got, want)
		}
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(ex.Granted, want) || !reflect.DeepEqual(linear, want) {
			t.Fatalf("case %d disagrees:\nrules %s\nsubject %+v\nservice %q scope %v now %v\noracle    %#v\nAuthorize %#v\nExplain   %#v\nlinear    %#v\nsteps:\n%s",
				i, fmtRules(c.rules), c.sub, c.service, c.scope, c.now, want, got, ex.Granted, linear, formatSteps(ex.Steps))
		}
		checkSteps(t, i, c, ex)
		other := randScope(r)
		multi := p.Authorize(c.sub, c.service, []Scope{c.scope, other, c.scope}, c.now)
		wantOther := oracleAuthorize(c.rules, c.sub, c.service, other, c.now)
		if overBudget(p.Explain(c.sub, c.service, other, c.now)) {
			wantOther = subsetOf(multi[1].Actions, wantOther)
		}
		if !reflect.DeepEqual(multi[0].Actions, want) || !reflect.DeepEqual(multi[2].Actions, want) ||
			!reflect.DeepEqual(multi[1].Actions, wantOther) {
			t.Fatalf("case %d: Authorize of several scopes %+v disagrees with single-scope results", i, multi)
		}
		if len(want) > 0 {
			stats["granted"]++
		}
		for _, s := range ex.Steps {
			stats[s.Kind+" "+s.Outcome]++
		}
	}
	// The generator must exercise every path, or the comparison is hollow.
	for _, k := range []string{"granted", "grant matched", "grant no match", "grant expired", "rule matched", "rule no match", "rule expired"} {
		if stats[k] == 0 && *aclCases >= 1000 {
			t.Errorf("no %q step in %d cases", k, *aclCases)
		}
	}
	t.Logf("%d cases: %v", *aclCases, stats)
}

// overBudget reports whether the scope ran out of budget.
func overBudget(ex Explanation) bool {
	return len(ex.Steps) > 0 && ex.Steps[len(ex.Steps)-1].Outcome == OutcomeOverBudget
}

// failedClosed reports whether the scope ran out of budget or stopped at
// an undecided rule.
func failedClosed(ex Explanation) bool {
	return overBudget(ex) || len(ex.Steps) > 0 && ex.Steps[len(ex.Steps)-1].Outcome == OutcomeUndecided
}

// subsetOf returns got if every action in it is in want, and want
// otherwise (so that a comparison with got fails).
func subsetOf(got, want []string) []string {
	for _, a := range got {
		if !slices.Contains(want, a) {
			return want
		}
	}
	return got
}

// checkSteps checks Explain's invariants: every grant is listed once, rules
// appear in seq order, only the last rule step may be a match, over budget
// or undecided, and the granted actions are what the matched steps
// contributed.
func checkSteps(t *testing.T, i int, c randCase, ex Explanation) {
	t.Helper()
	var grants, rules []Step
	for _, s := range ex.Steps {
		if s.Kind == StepGrant {
			if len(rules) > 0 {
				t.Fatalf("case %d: grant step after rule steps", i)
			}
			grants = append(grants, s)
		} else {
			rules = append(rules, s)
		}
	}
	if len(grants) != len(c.sub.Grants) {
		t.Fatalf("case %d: %d grant steps for %d grants", i, len(grants), len(c.sub.Grants))
	}
	var contributed []string
	for k, s := range ex.Steps {
		if s.Outcome == OutcomeMatched {
			contributed = append(contributed, s.Actions...)
			if s.Kind == StepRule && k != len(ex.Steps)-1 {
				t.Fatalf("case %d: matched rule is not the last step", i)
			}
		} else if (s.Outcome == OutcomeOverBudget || s.Outcome == OutcomeUndecided) && k != len(ex.Steps)-1 {
			t.Fatalf("case %d: %s rule is not the last step", i, s.Outcome)
		} else if s.Actions != nil {
			t.Fatalf("case %d: step %+v has actions without a match", i, s)
		}
		if s.Reason == "" || s.Pattern == "" && s.Kind == StepRule {
			t.Fatalf("case %d: step %+v lacks a reason or pattern", i, s)
		}
	}
	for k := 1; k < len(rules); k++ {
		if rules[k-1].Seq >= rules[k].Seq {
			t.Fatalf("case %d: rule steps out of order", i)
		}
	}
	// The steps' actions are requested ones: granted is exactly what they
	// contributed, in requested order.
	got := []string{}
	for _, a := range c.scope.Actions {
		if slices.Contains(contributed, a) && !slices.Contains(got, a) {
			got = append(got, a)
		}
	}
	if !reflect.DeepEqual(got, ex.Granted) {
		t.Fatalf("case %d: steps contributed %v, granted %v", i, got, ex.Granted)
	}
	decided := len(rules) > 0 && rules[len(rules)-1].Outcome != OutcomeNoMatch && rules[len(rules)-1].Outcome != OutcomeExpired
	if !decided && len(rules) != len(c.rules) {
		t.Fatalf("case %d: no rule matched but only %d of %d rules listed", i, len(rules), len(c.rules))
	}
}

func fmtRules(rules []Rule) string {
	var b strings.Builder
	s := func(p *string) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", *p)
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "\n  seq %d account=%s type=%s name=%s service=%s ip=%s labels=%v actions=%q expires=%v",
			r.Seq, s(r.Match.Account), s(r.Match.Type), s(r.Match.Name), s(r.Match.Service), s(r.Match.IP), r.Match.Labels, r.Actions, r.ExpiresAt)
	}
	return b.String()
}
