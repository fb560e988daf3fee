package acl

import (
	"fmt"
	"math/rand/v2"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// visitedPairs counts the (instruction, position) pairs a matcher can
// reach on input: everything reachable from the start, whether or not a
// match is found on the way. Go's backtracker and NFA never run an
// instruction twice at one position, so this is the most work they do.
func visitedPairs(prog *syntax.Prog, input string) int {
	type state struct{ pc, pos int }
	seen := map[state]bool{}
	work := []state{{prog.Start, 0}}
	for len(work) > 0 {
		s := work[len(work)-1]
		work = work[:len(work)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		i := &prog.Inst[s.pc]
		switch i.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			work = append(work, state{int(i.Out), s.pos}, state{int(i.Arg), s.pos})
		case syntax.InstNop, syntax.InstCapture:
			work = append(work, state{int(i.Out), s.pos})
		case syntax.InstEmptyWidth:
			var before, after rune = -1, -1
			if s.pos > 0 {
				before, _ = utf8.DecodeLastRuneInString(input[:s.pos])
			}
			if s.pos < len(input) {
				after, _ = utf8.DecodeRuneInString(input[s.pos:])
			}
			if syntax.EmptyOp(i.Arg)&^syntax.EmptyOpContext(before, after) == 0 {
				work = append(work, state{int(i.Out), s.pos})
			}
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			if s.pos < len(input) {
				r, w := utf8.DecodeRuneInString(input[s.pos:])
				if i.MatchRune(r) {
					work = append(work, state{int(i.Out), s.pos + w})
				}
			}
		}
	}
	return len(seen)
}

func TestRegexCostBoundsWork(t *testing.T) {
	exprs := []string{
		`.+`, `.*(?:^foo\/.*).*`, `(x?){50}`, `(?i)[a-z]{1,100}q`, `reg6\/(dev|staging)\/[a-z0-9-]+`,
		`(.*x){5}y`, `(?:x*){10}y`, `(?:x|xx)*y`, `^a|b$`, `(?m)^x$`, `(?:^x)*y`, `\bx\B.*`, `x{3,7}[^x]{2}`,
		`(?i)(?:.*\pL){3}y`, `é*x.{2,4}`, `(?s).{0,20}`, `(?:)*`, `(?:a*)*`, `(${x}|y)+`,
	}
	inputs := []string{"", "x", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "foo/xx", "reg6/dev/abc", "aé\nxé", "ébé" + strings.Repeat("x", 30),
		strings.Repeat("ab", 40), strings.Repeat("x", 255)}
	r := rand.New(rand.NewPCG(5, 6))
	atoms := []string{"x", "y", ".", "[a-x]", `\pL`, "é", "^", "$", `\b`, "(?i)k", "(?:)"}
	for range 300 {
		var b strings.Builder
		for range 1 + r.IntN(6) {
			a := atoms[r.IntN(len(atoms))]
			if r.IntN(3) == 0 {
				a = "(?:" + a + atoms[r.IntN(len(atoms))] + ")"
			}
			b.WriteString(a + pick(r, []string{"", "*", "+", "?", "{2,4}", "{3}", "|"}))
		}
		exprs = append(exprs, strings.TrimSuffix(b.String(), "|"))
	}
	for _, e := range exprs {
		prog, err := validateAnchored("^(?:" + e + ")$")
		if err != nil {
			continue
		}
		c := analyzeProgram(prog)
		for _, in := range append(inputs, strings.Repeat("xy", r.IntN(20))) {
			if got, bound := visitedPairs(prog, in), c.steps(len(in))-c.insts; got > bound {
				t.Errorf("/%s/ on %q: %d (instruction, position) pairs reachable, bound %d", e, in, got, bound)
			}
		}
	}
}

func TestRegexCostExamples(t *testing.T) {
	tests := []struct {
		expr string
		n    int
		want int // steps
	}{
		// ^(?:abc)$ is 7 instructions; each reachable one runs at one
		// position only: ^ and a at 0, b at 1, c at 2, $ and the match
		// at 3.
		{`abc`, 255, 7 + 6},
		// ^(?:.+)$ is 6 instructions; ^ runs at 0, the loop's two and
		// what follows it at any of the 256 positions.
		{`.+`, 255, 6 + 1 + 4*256},
		// '^' inside pins what follows it to position 0: of 11
		// instructions, the anchoring ^ runs at 0, the leading loop's two
		// and the inner ^ at any of the 10 positions, a and b at one each,
		// and the trailing loop's two, $ and the match from position 2 on.
		{`.*(?:^ab).*`, 9, 11 + 1 + 3*10 + 2 + 4*8},
	}
	for _, tt := range tests {
		prog, err := validateAnchored("^(?:" + tt.expr + ")$")
		if err != nil {
			t.Fatal(err)
		}
		c := analyzeProgram(prog)
		if got := c.steps(tt.n); got != tt.want {
			t.Errorf("/%s/ at %d: %d steps, want %d (windows %v)", tt.expr, tt.n, got, tt.want, fmtWindows(c))
		}
	}
}

func fmtWindows(c regexCost) string {
	var parts []string
	for _, w := range c.win {
		parts = append(parts, fmt.Sprintf("[%d,%d]", w&0xFFFF, w>>16))
	}
	return strings.Join(parts, " ")
}

func TestCostlyPatternsRefused(t *testing.T) {
	tests := []struct {
		name    string
		rule    Rule
		wantErr []string // substrings; nil means accepted
	}{
		// The rules of the security finding: alone, each made a request
		// of 64 long scopes cost a hundred milliseconds or more.
		{name: "nullable group repeated", rule: Rule{Seq: 1, Match: Match{Name: sp("/(x?){1000}/")}, Actions: []string{"pull"}},
			wantErr: []string{"rule seq 1: match.name: regular expression /(x?){1000}/ (4004 instructions) may take 898212 steps to match a 255-character value, more than the 16384 that deciding one scope of a request (of up to 64) may take"}},
		{name: "on the account", rule: Rule{Seq: 2, Match: Match{Account: sp("/(x?){1000}/")}, Actions: []string{"pull"}},
			wantErr: []string{"rule seq 2: match.account: regular expression /(x?){1000}/"}},
		{name: "counted class", rule: Rule{Seq: 3, Match: Match{Name: sp("/(?i)[a-z]{1,1000}q/")}, Actions: []string{"pull"}},
			wantErr: []string{"rule seq 3: match.name: regular expression /(?i)[a-z]{1,1000}q/ (2004 instructions)"}},
		{name: "label regex", rule: Rule{Seq: 4, Match: Match{Labels: map[string]string{"team": "/(?:x|xx){1,100}/"}}, Actions: []string{"pull"}},
			wantErr: []string{`rule seq 4: match.labels["team"]: regular expression /(?:x|xx){1,100}/`}},
		{name: "glob with a large class after a star", rule: Rule{Seq: 5, Match: Match{Name: sp("*[" + strings.Repeat("b-c", 100) + "]x")}, Actions: []string{"pull"}},
			wantErr: []string{`rule seq 5: match.name: glob "*[b-cb-c`}},
		{name: "templated regex", rule: Rule{Seq: 6, Match: Match{Name: sp(`/${account}(x?){200}/`)}, Actions: []string{"pull"}},
			wantErr: []string{"rule seq 6: match.name: regular expression /${account}(x?){200}/ (with one-character values)"}},

		// What real rule sets use stays well within the bound.
		{name: "docker_auth account", rule: Rule{Seq: 10, Match: Match{Account: sp("/.+/")}, Actions: []string{"pull"}}},
		{name: "imported unanchored regex", rule: Rule{Seq: 11, Match: Match{Name: sp(`/.*(?:(alpha|beta|gamma|delta|epsilon)\/.*).*/`)}, Actions: []string{"pull"}}},
		{name: "imported regex anchored at the start", rule: Rule{Seq: 12, Match: Match{Name: sp(`/.*(?:^library\/(ubuntu|debian|alpine|busybox|nginx|redis|postgres|mysql)$).*/`)}, Actions: []string{"pull"}}},
		{name: "literal prefix", rule: Rule{Seq: 13, Match: Match{Name: sp(`/(?i)(team-alpha|team-beta|team-gamma)\/(dev|staging|prod)\/[a-z0-9._-]+/`)}, Actions: []string{"pull"}}},
		{name: "digest-like", rule: Rule{Seq: 14, Match: Match{Name: sp(`/sha256:[0-9a-f]{64}/`)}, Actions: []string{"pull"}}},
		{name: "templated", rule: Rule{Seq: 15, Match: Match{Name: sp(`/${account}\/.+/`), Labels: map[string]string{"team": `/${labels:team}-.*/`}}, Actions: []string{"pull"}}},
		{name: "scoped template", rule: Rule{Seq: 16, Match: Match{Account: sp(`/${name}|admin/`)}, Actions: []string{"pull"}}},
		{name: "globs", rule: Rule{Seq: 17, Match: Match{Name: sp("*/*-[a-z0-9]*"), Account: sp("*"), Service: sp("*.example.com")}, Actions: []string{"pull"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]Rule{tt.rule})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile accepted %s", fmtRules([]Rule{tt.rule}))
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if verr := tt.rule.Validate(); verr == nil || verr.Error() != err.Error() {
				t.Errorf("Validate = %v, want the Compile error", verr)
			}
		})
	}
}

// costlyName is an accepted name regex that takes a good part of a
// scope's budget to match against a long name (and never matches one
// without a 'z').
func costlyName(i int) *string { return sp(fmt.Sprintf(`/(?i)(?:.*\pL){4}z%d/`, i)) }

// costlyNameSteps is what matching costlyName against a value of n
// bytes is charged.
func costlyNameSteps(t *testing.T, n int) int {
	t.Helper()
	p, err := compilePattern(*costlyName(0))
	if err != nil {
		t.Fatal(err)
	}
	return p.program().cost.steps(n)
}

// spent returns the steps deciding sc took, and whether it ran out.
func spent(p *Policy, sub Subject, service string, sc Scope) (int, bool) {
	ec := newEvalCtx(&sub, service, &sc, p.cache)
	p.firstMatchIndexed(&ec, now0)
	return ScopeBudget - ec.budget, ec.over
}

func TestScopeBudgetFailsClosed(t *testing.T) {
	var rules []Rule
	for i := range 10 {
		rules = append(rules, Rule{Seq: int64(10 + i), Match: Match{Name: costlyName(i)}, Actions: []string{"*"}})
	}
	rules = append(rules, Rule{Seq: 100, Actions: []string{"pull", "push"}})
	// The rule whose match the budget cannot pay for on a long name.
	overAt := int64(10 + ScopeBudget/costlyNameSteps(t, MaxNameLength))
	p := mustCompile(t, rules)
	sub := Subject{Account: "alice", Grants: []Grant{{Pattern: "x*", Actions: []string{"delete"}}}}
	short := Scope{Type: TypeRepository, Name: "xx", Actions: []string{"pull", "push", "delete"}}
	long := Scope{Type: TypeRepository, Name: strings.Repeat("x", MaxNameLength), Actions: []string{"pull", "push", "delete"}}

	// A short name costs little: every rule is tried and rule 100 decides.
	if n, over := spent(p, sub, "", short); over || n > ScopeBudget/10 {
		t.Fatalf("short name: spent %d, over %v", n, over)
	}
	if got := p.Authorize(sub, "", []Scope{short}, now0)[0].Actions; !slices.Equal(got, []string{"pull", "push", "delete"}) {
		t.Fatalf("short name: granted %q", got)
	}

	// A long name runs out of budget at rule overAt: the rules allow
	// nothing, the user's own grant still applies.
	if n, over := spent(p, sub, "", long); !over || n > ScopeBudget {
		t.Fatalf("long name: spent %d, over %v", n, over)
	}
	if got := p.Authorize(sub, "", []Scope{long}, now0)[0].Actions; !slices.Equal(got, []string{"delete"}) {
		t.Fatalf("long name: granted %q, want only the grant's delete", got)
	}
	ex := p.Explain(sub, "", long, now0)
	last := ex.Steps[len(ex.Steps)-1]
	if !slices.Equal(ex.Granted, []string{"delete"}) || last.Seq != overAt || last.Outcome != OutcomeOverBudget || !strings.Contains(last.Reason, "fails closed") {
		t.Fatalf("Explain granted %q, steps:\n%s", ex.Granted, formatSteps(ex.Steps))
	}
	if d := p.DecidedBy(sub, "", long, now0); d.HasRule || !d.FailedClosed || !slices.Equal(d.Grants, []string{"x*"}) {
		t.Fatalf("DecidedBy = %+v", d)
	}

	// Each scope has a budget of its own: a request of many long scopes
	// decides each as it would be decided alone.
	var scopes []Scope
	for i := range MaxScopes {
		scopes = append(scopes, []Scope{short, long}[i%2])
	}
	for i, sc := range p.Authorize(sub, "", scopes, now0) {
		want := []string{"pull", "push", "delete"}
		if i%2 == 1 {
			want = []string{"delete"}
		}
		if !slices.Equal(sc.Actions, want) {
			t.Fatalf("scope %d of %d: granted %q, want %q", i, len(scopes), sc.Actions, want)
		}
	}
}

func TestSharedPatternChargedOnce(t *testing.T) {
	// Rules that share a pattern share its match: a thousand rules with
	// the same costly account regex cost one match per scope.
	var rules []Rule
	for i := range 1000 {
		rules = append(rules, Rule{Seq: int64(i), Match: Match{Account: costlyName(0), Name: sp(fmt.Sprintf("*q%d", i))}, Actions: []string{"*"}})
	}
	rules = append(rules, Rule{Seq: 5000, Actions: []string{"pull"}})
	p := mustCompile(t, rules)
	sub := Subject{Account: strings.Repeat("x", 128)}
	sc := Scope{Type: TypeRepository, Name: strings.Repeat("x", MaxNameLength), Actions: []string{"pull", "push"}}
	if n, over := spent(p, sub, "", sc); over || n > ScopeBudget/2 {
		t.Fatalf("spent %d, over %v", n, over)
	}
	if got := p.Authorize(sub, "", []Scope{sc}, now0)[0].Actions; !slices.Equal(got, []string{"pull"}) {
		t.Fatalf("granted %q", got)
	}
}

func TestExplainSpendsLikeAuthorize(t *testing.T) {
	// Rules the index skips (their names start with "other/") are
	// matched by Explain, which tries every rule, but not charged: it
	// must run out of budget at the same rule as Authorize.
	var rules []Rule
	for i := range 20 {
		rules = append(rules, Rule{Seq: int64(i), Match: Match{Name: sp(fmt.Sprintf(`/other\/(?i)(?:.*\pL){4}z%d/`, i))}, Actions: []string{"*"}})
	}
	for i := range 10 {
		rules = append(rules, Rule{Seq: int64(100 + i), Match: Match{Name: costlyName(i)}, Actions: []string{"*"}})
	}
	rules = append(rules, Rule{Seq: 200, Actions: []string{"pull"}})
	p := mustCompile(t, rules)
	for _, n := range []int{2, 100, MaxNameLength} {
		sc := Scope{Type: TypeRepository, Name: strings.Repeat("x", n), Actions: []string{"pull"}}
		ex := p.Explain(Subject{}, "", sc, now0)
		d := p.DecidedBy(Subject{}, "", sc, now0)
		got := p.Authorize(Subject{}, "", []Scope{sc}, now0)[0].Actions
		last := ex.Steps[len(ex.Steps)-1]
		if !slices.Equal(got, ex.Granted) || d.FailedClosed != (last.Outcome == OutcomeOverBudget) ||
			d.HasRule != (last.Outcome == OutcomeMatched) || d.HasRule && d.Rule != last.Seq {
			t.Errorf("name of %d: Authorize %q, DecidedBy %+v, Explain %q, steps:\n%s", n, got, d, ex.Granted, formatSteps(ex.Steps))
		}
		if n == MaxNameLength && last.Outcome != OutcomeOverBudget {
			t.Errorf("name of %d: want the budget to run out, steps:\n%s", n, formatSteps(ex.Steps))
		}
	}
}
