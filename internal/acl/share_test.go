package acl

import (
	"cmp"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
)

func TestCompileSharesPatterns(t *testing.T) {
	p := mustCompile(t, []Rule{
		{Seq: 1, Match: Match{Account: sp("/.+/"), Name: sp("/a[0-9]+/")}, Actions: []string{"pull"}},
		{Seq: 2, Match: Match{Account: sp("/.+/"), Name: sp("/b[0-9]+/")}, Actions: []string{"push"}},
		{Seq: 3, Match: Match{Labels: map[string]string{"team": "/.+/"}, Name: sp("/a[0-9]+/")}, Actions: []string{"pull"}},
		{Seq: 4, Match: Match{Labels: map[string]string{"team": "/.+/"}}, Actions: []string{}},
		{Seq: 5, Match: Match{Labels: map[string]string{"team": "/.+/", "x": "y"}}, Actions: []string{}},
	})
	r := p.rules
	if r[0].account == nil || r[0].account != r[1].account || r[0].account != r[2].labelConds()[0].pat {
		t.Error(`"/.+/" compiled more than once`)
	}
	if r[0].name != r[2].name {
		t.Error(`"/a[0-9]+/" compiled more than once`)
	}
	if r[0].name == r[1].name {
		t.Error("different patterns share one")
	}
	if r[0].actions != r[2].actions || r[3].actions != r[4].actions {
		t.Error("equal actions not shared")
	}
	if r[2].labels != r[3].labels {
		t.Error("equal labels not shared")
	}
	if r[3].labels == r[4].labels || r[0].actions == r[1].actions || r[0].actions == r[3].actions {
		t.Error("different labels or actions shared")
	}
	for _, pt := range []*pattern{r[0].account, r[0].name, r[1].name} {
		if pt.re.Load() != nil {
			t.Errorf("%s compiled before first use", pt.src)
		}
	}
	sub := Subject{Account: "alice", Labels: map[string][]string{"team": {"x"}}}
	for _, tt := range []struct {
		scope string
		want  []string
	}{
		{"repository:a1:pull,push", []string{"pull"}},
		{"repository:b22:pull,push", []string{"push"}},
		{"repository:c3:pull,push", []string{}},
	} {
		got := p.Authorize(sub, "", []Scope{mustScope(t, tt.scope)}, now0)[0].Actions
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.scope, got, tt.want)
		}
	}
	for _, pt := range []*pattern{r[0].account, r[0].name, r[1].name} {
		if pt.re.Load() == nil {
			t.Errorf("%s not compiled after use", pt.src)
		}
	}
}

// TestLazyRegexpConcurrentFirstUse races goroutines on the first use of
// each regular expression (run it with -race): all must decide correctly
// and end up sharing one program.
func TestLazyRegexpConcurrentFirstUse(t *testing.T) {
	var rules []Rule
	for i := range 20 {
		rules = append(rules, Rule{Seq: int64(i), Match: Match{Account: sp("/.+/"), Name: sp(`/r` + string(rune('a'+i)) + `\/[a-z]+/`)}, Actions: []string{"pull"}})
	}
	p := mustCompile(t, rules)
	var wg sync.WaitGroup
	progs := make([][]*regexProgram, 8)
	for g := range progs {
		wg.Go(func() {
			for i := range rules {
				sc := Scope{Type: TypeRepository, Name: "r" + string(rune('a'+i)) + "/x", Actions: []string{"pull", "push"}}
				if got := p.Authorize(Subject{Account: "u"}, "", []Scope{sc}, now0)[0].Actions; !reflect.DeepEqual(got, []string{"pull"}) {
					t.Errorf("%s: got %q", sc.Name, got)
				}
				progs[g] = append(progs[g], p.rules[i].name.program())
			}
		})
	}
	wg.Wait()
	for g := range progs {
		if !slices.Equal(progs[g], progs[0]) {
			t.Fatalf("goroutines %d and 0 saw different programs", g)
		}
	}
}

// TestRulesRebuildsInput checks that Rules, which rebuilds rules from
// their compiled form, returns exactly what Compile was given.
func TestRulesRebuildsInput(t *testing.T) {
	rules := []Rule{
		{Seq: 5, Match: Match{Account: sp("a"), Type: sp("registry"), Name: sp("/x${account}/"), Service: sp("s*"),
			IP: sp("::ffff:10.0.0.0/104"), Labels: map[string]string{"k": "${labels:k}", "j": "/.+/"}},
			Actions: []string{"push", "pull", "push"}, Comment: "everything", ExpiresAt: tp(now0)},
		{Seq: 3, Match: Match{Labels: map[string]string{}}, Actions: []string{}},
		{Seq: 4, Match: Match{IP: sp("10.1.2.3")}, Actions: []string{"*"}, Comment: "ip"},
		{Seq: -1, Actions: []string{"pull"}},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		rules = append(rules, randomCase(r).rules...)
	}
	for i, seq := range r.Perm(len(rules)) {
		rules[i].Seq = int64(seq) - 3
		if i%5 == 0 {
			rules[i].Comment = "c"
		}
	}
	p := mustCompile(t, rules)
	want := slices.Clone(rules)
	slices.SortFunc(want, func(a, b Rule) int { return cmp.Compare(a.Seq, b.Seq) })
	if got := p.Rules(); !reflect.DeepEqual(got, want) {
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("rule %d: Rules gave\n%#v\nwant\n%#v", i, got[i], want[i])
			}
		}
	}
}
