package acl

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestUpdateEqualsCompile applies random changes to random rule sets with
// Update and checks the result against Compile of the resulting set: the
// same rules, and the same decisions for random requests.
func TestUpdateEqualsCompile(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		c := randomCase(r)
		p, err := Compile(c.rules)
		if err != nil {
			t.Fatalf("case %d: Compile: %v", i, err)
		}
		// The final rule set, by seq, and the changes that lead to it.
		final := map[int64]Rule{}
		for _, rule := range c.rules {
			final[rule.Seq] = rule
		}
		var changed []Rule
		var removed []int64
		for _, rule := range c.rules {
			if r.IntN(4) == 0 {
				removed = append(removed, rule.Seq)
				delete(final, rule.Seq)
			}
		}
		for range r.IntN(6) {
			nr := randRule(r, int64(r.IntN(len(c.rules)+8))-2, c.now)
			if slices.ContainsFunc(changed, func(x Rule) bool { return x.Seq == nr.Seq }) {
				continue
			}
			changed = append(changed, nr)
			final[nr.Seq] = nr
		}
		removed = append(removed, 1000+int64(r.IntN(5))) // unknown seqs are ignored

		up, err := p.Update(changed, removed)
		if err != nil {
			t.Fatalf("case %d: Update: %v", i, err)
		}
		want, err := Compile(slices.Collect(maps.Values(final)))
		if err != nil {
			t.Fatalf("case %d: Compile of the result: %v", i, err)
		}
		if !reflect.DeepEqual(up.Rules(), want.Rules()) {
			t.Fatalf("case %d: Update gives rules\n%s\nCompile gives\n%s", i, fmtRules(up.Rules()), fmtRules(want.Rules()))
		}
		for range 5 {
			sub, sc := randSubject(r, c.now), randScope(r)
			svc := pick(r, rServices)
			got := up.Authorize(sub, svc, []Scope{sc}, c.now)
			exp := want.Authorize(sub, svc, []Scope{sc}, c.now)
			if !reflect.DeepEqual(got, exp) {
				t.Fatalf("case %d: Update's policy decides %v, Compile's %v, for %+v %v", i, got, exp, sub, sc)
			}
		}
		if !reflect.DeepEqual(p.Rules(), mustCompile(t, c.rules).Rules()) {
			t.Fatalf("case %d: Update modified the old policy", i)
		}
	}
}

func TestUpdateErrors(t *testing.T) {
	p := mustCompile(t, []Rule{{Seq: 1, Actions: []string{"pull"}}})
	_, err := p.Update([]Rule{{Seq: 2, Actions: []string{"fly"}}, {Seq: 3, Actions: []string{}}, {Seq: 3, Actions: []string{}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "rule seq 2: unknown action") || !strings.Contains(err.Error(), "rule seq 3: duplicate seq") {
		t.Errorf("Update with an invalid and a duplicated rule: %v", err)
	}
	var nilPolicy *Policy
	np, err := nilPolicy.Update([]Rule{{Seq: 5, Actions: []string{"*"}}}, []int64{1})
	if err != nil || np.Len() != 1 {
		t.Errorf("nil.Update = %d rules, %v; want 1 rule", np.Len(), err)
	}
}
