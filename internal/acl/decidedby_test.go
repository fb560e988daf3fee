package acl

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDecidedByAgreesWithExplain: on the oracle's random cases, DecidedBy
// names exactly the rule and grants that Explain reports as matched.
func TestDecidedByAgreesWithExplain(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var rules, grants int
	for i := range 5000 {
		c := randomCase(r)
		p, err := Compile(c.rules)
		if err != nil {
			t.Fatalf("case %d: Compile: %v", i, err)
		}
		ex := p.Explain(c.sub, c.service, c.scope, c.now)
		var want Decider
		for _, s := range ex.Steps {
			if s.Outcome != OutcomeMatched {
				continue
			}
			if s.Kind == StepRule {
				want.Rule, want.HasRule = s.Seq, true
			} else {
				want.Grants = append(want.Grants, s.Pattern)
			}
		}
		got := p.DecidedBy(c.sub, c.service, c.scope, c.now)
		if got.HasRule != want.HasRule || got.Rule != want.Rule || !slices.Equal(got.Grants, want.Grants) {
			t.Fatalf("case %d: DecidedBy %+v, Explain says %+v\nrules %s\nsubject %+v\nscope %v",
				i, got, want, fmtRules(c.rules), c.sub, c.scope)
		}
		// The token server's one evaluation says the same, and grants
		// the same as Authorize.
		dec := make([]Decider, 1)
		granted := p.AuthorizeDecided(c.sub, c.service, []Scope{c.scope}, c.now, dec)
		if d := dec[0]; d.HasRule != got.HasRule || d.Rule != got.Rule || d.FailedClosed != got.FailedClosed || !slices.Equal(d.Grants, got.Grants) {
			t.Fatalf("case %d: AuthorizeDecided says %+v, DecidedBy %+v", i, d, got)
		}
		if plain := p.Authorize(c.sub, c.service, []Scope{c.scope}, c.now); !slices.Equal(granted[0].Actions, plain[0].Actions) {
			t.Fatalf("case %d: AuthorizeDecided granted %v, Authorize %v", i, granted[0].Actions, plain[0].Actions)
		}
		if got.HasRule {
			rules++
		}
		grants += len(got.Grants)
	}
	if rules == 0 || grants == 0 {
		t.Fatalf("the cases matched %d rules and %d grants: the comparison is hollow", rules, grants)
	}
	if d := (*Policy)(nil).DecidedBy(Subject{}, "s", Scope{Type: TypeRepository, Name: "a"}, now0); d.HasRule || d.Grants != nil {
		t.Fatalf("nil policy: %+v", d)
	}
}
