package acl

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchRules builds n rules in a mix a large installation might have:
// 40% per-user namespaces, 20% label-gated project globs, 20% regular
// expressions, 10% rules templated on a per-group label, 10% service and
// CIDR restricted CI rules; plus docker_auth's generic rules on top.
func benchRules(n int) []Rule {
	rules := []Rule{
		{Seq: 1, Match: Match{Account: sp("admin")}, Actions: []string{"*"}},
		{Seq: 2, Match: Match{Account: sp(""), Name: sp("hello-world")}, Actions: []string{"pull"}},
		{Seq: 3, Match: Match{Account: sp("/.+/"), Type: sp("registry"), Name: sp("catalog")}, Actions: []string{"*"}},
		{Seq: 4, Match: Match{Name: sp("${labels:full-access}")}, Actions: []string{"*"}},
		{Seq: 5, Match: Match{Name: sp("${labels:read-only-access}")}, Actions: []string{"pull"}},
	}
	for i := range n - len(rules) {
		r := Rule{Seq: int64(10 + i)}
		switch i % 10 {
		case 0, 1, 2, 3:
			r.Match = Match{Account: sp(fmt.Sprintf("user%d", i)), Name: sp(fmt.Sprintf("user%d/*", i))}
			r.Actions = []string{"*"}
		case 4, 5:
			r.Match = Match{Labels: map[string]string{"team": fmt.Sprintf("team%d", i)}, Name: sp(fmt.Sprintf("proj%d/*", i))}
			r.Actions = []string{"pull", "push"}
		case 6, 7:
			r.Match = Match{Account: sp("/.+/"), Name: sp(fmt.Sprintf(`/reg%d\/(dev|staging)\/[a-z0-9-]+/`, i))}
			r.Actions = []string{"pull"}
		case 8:
			r.Match = Match{Account: sp("/.+/"), Name: sp(fmt.Sprintf("${labels:grp%d}/*", i))}
			r.Actions = []string{"pull", "push"}
		case 9:
			r.Match = Match{Service: sp("registry.example.com"), IP: sp(fmt.Sprintf("10.%d.0.0/16", i%256)), Name: sp(fmt.Sprintf("ci%d/*", i))}
			r.Actions = []string{"pull", "push"}
		}
		rules = append(rules, r)
	}
	return rules
}

var benchSubject = Subject{
	Account: "user4000",
	Labels: map[string][]string{
		"team":        {"team4004", "team9994"},
		"grp9978":     {"shared"},
		"full-access": {"scratch/*"},
	},
	Grants: []Grant{{Pattern: "sandbox/*", Actions: []string{"*"}}},
	IP:     netip.MustParseAddr("10.9.1.1"),
}

var benchScopes = []struct{ name, scope string }{
	{"hit-early", "repository:user4000/app:pull,push"},
	{"hit-late-regex", "repository:reg9986/dev/api:pull,push"},
	{"hit-late-label", "repository:proj9994/app:pull,push"},
	{"miss", "repository:nothing/here:pull"},
}

func BenchmarkParseScopes(b *testing.B) {
	values := []string{"repository:localhost:5000/team/app:pull,push repository:team/base:pull", "registry:catalog:*"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseScopes(values); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthorize10kRules(b *testing.B) {
	p := mustCompile(b, benchRules(10000))
	for _, bs := range benchScopes {
		scopes := []Scope{mustScope(b, bs.scope)}
		b.Run(bs.name, func(b *testing.B) {
			b.ReportAllocs()
			lat := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				t0 := time.Now()
				p.Authorize(benchSubject, "registry.example.com", scopes, now0)
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
	// For comparison: the same decision without the index.
	sc := mustScope(b, "repository:nothing/here:pull")
	b.Run("miss-linear", func(b *testing.B) {
		b.ReportAllocs()
		warmUp(p)
		for b.Loop() {
			sub := benchSubject
			p.evaluate([]string{}, &sub, "registry.example.com", &sc, now0, nil, true, nil)
		}
	})
}

func BenchmarkExplain(b *testing.B) {
	p := mustCompile(b, benchRules(10000))
	sc := mustScope(b, "repository:proj9994/app:pull,push")
	b.ReportAllocs()
	warmUp(p)
	for b.Loop() {
		p.Explain(benchSubject, "registry.example.com", sc, now0)
	}
}

// warmUp decides a scope no rule matches, trying every rule, so that the
// regular expressions Compile leaves to first use are built (all of them,
// for benchRules and benchSubject) and benchmarks that try every rule
// measure the steady state rather than that one-time cost (see
// BenchmarkFirstUse).
func warmUp(p *Policy) {
	sub := benchSubject
	sc := Scope{Type: TypeRepository, Name: "nothing/here", Actions: []string{ActionPull}}
	p.evaluate(nil, &sub, "registry.example.com", &sc, now0, nil, true, nil)
}

// BenchmarkFirstUse measures what Compile leaves to first use: deciding on
// a fresh policy with every rule tried, which compiles every regular
// expression on the way.
func BenchmarkFirstUse(b *testing.B) {
	rules := benchRules(10000)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p := mustCompile(b, rules)
		b.StartTimer()
		warmUp(p)
	}
}

func BenchmarkCompile10kRules(b *testing.B) {
	rules := benchRules(10000)
	b.ReportAllocs()
	for b.Loop() {
		mustCompile(b, rules)
	}
}

func TestBenchScenario(t *testing.T) {
	// The benchmark must measure real decisions, not errors or misses.
	p := mustCompile(t, benchRules(10000))
	want := map[string][]string{
		"hit-early":      {"pull", "push"},
		"hit-late-regex": {"pull"},
		"hit-late-label": {"pull", "push"},
		"miss":           {},
	}
	for _, bs := range benchScopes {
		got := p.Authorize(benchSubject, "registry.example.com", []Scope{mustScope(t, bs.scope)}, now0)[0].Actions
		if !slices.Equal(got, want[bs.name]) {
			t.Errorf("%s: got %q, want %q", bs.name, got, want[bs.name])
		}
	}
}

// worstCase is a rule set, a subject and a name length for
// BenchmarkAuthorizeWorstCase.
type worstCase struct {
	name    string
	rules   []Rule
	sub     Subject
	nameLen int
}

// worstCases are the costliest requests found for rule sets that Compile
// accepts, each with MaxScopes scopes of names of nameLen bytes that no
// rule matches, so that every candidate rule is tried; plus, first, the
// rules of the security finding that led to ScopeBudget (which Compile
// now refuses).
func worstCases() []worstCase {
	long := strings.Repeat("x", 128)
	// unindexed returns n rules that every scope tries and none matches.
	unindexed := func(n int) []Rule {
		var rules []Rule
		for i := range n {
			rules = append(rules, Rule{Seq: int64(i), Match: Match{Type: sp(TypeRegistry), Name: sp(fmt.Sprintf("*z%d", i))}, Actions: []string{"pull"}})
		}
		return rules
	}
	// costly returns n distinct unindexed rules from format, after those
	// of unindexed, that no scope can afford all of.
	costly := func(n int, field func(*Match, *string), format string) []Rule {
		var rules []Rule
		for i := range n {
			r := Rule{Seq: int64(100000 + i), Actions: []string{"pull"}}
			field(&r.Match, sp(fmt.Sprintf(format, i)))
			rules = append(rules, r)
		}
		return rules
	}
	name := func(m *Match, s *string) { m.Name = s }
	account := func(m *Match, s *string) { m.Account = s }
	// The slowest regular expression per charged step found: loops over
	// large Unicode classes.
	const slowRegex = `/(?i)(?:.*[\p{L}\p{N}\p{M}]){4}z%d/`
	return []worstCase{
		{name: "finding", nameLen: 253, sub: Subject{Account: long}, rules: []Rule{
			{Seq: 1, Match: Match{Name: sp("/(x?){1000}/")}, Actions: []string{"pull"}},
			{Seq: 2, Match: Match{Account: sp("/(x?){1000}/")}, Actions: []string{"pull"}},
			{Seq: 3, Match: Match{Name: sp("/(?i)[a-z]{1,1000}q/")}, Actions: []string{"pull"}},
		}},
		{name: "regex", nameLen: MaxNameLength, sub: Subject{Account: long}, rules: costly(100, name, slowRegex)},
		{name: "account-regex", nameLen: MaxNameLength, sub: Subject{Account: long}, rules: costly(100, account, slowRegex)},
		{name: "glob", nameLen: MaxNameLength, sub: Subject{Account: long}, rules: costly(100, name, "*"+strings.Repeat("x", 20)+"z%d")},
		// A regex using ${name} is compiled for every scope name; names
		// longer than this cannot pay for it and fail closed at once.
		{name: "compile", nameLen: 100, sub: Subject{Account: long}, rules: costly(100, account, `/${name}z%d/`)},
		// 10,000 rules tried, then the budget's rest spent on regexes.
		{name: "10k-rules", nameLen: MaxNameLength, sub: Subject{Account: long},
			rules: append(unindexed(10000), costly(100, name, slowRegex)...)},
		// More rules than a scope can try.
		{name: "20k-rules", nameLen: MaxNameLength, sub: Subject{Account: long}, rules: unindexed(20000)},
	}
}

// BenchmarkAuthorizeWorstCase decides the requests of worstCases. Every
// iteration uses new names, so that no cache helps. steps/scope is what
// each scope was charged (at most ScopeBudget); cpu-ns/op is the process's
// CPU time per request (garbage collection included), which, unlike
// ns/op, other processes' load hardly changes.
func BenchmarkAuthorizeWorstCase(b *testing.B) {
	for _, wc := range worstCases() {
		b.Run(wc.name, func(b *testing.B) {
			p, err := Compile(wc.rules)
			if err != nil {
				b.Skipf("Compile refuses the rules: %.200v", err)
			}
			iter := 0
			scopes := func() []Scope {
				out := make([]Scope, MaxScopes)
				for i := range out {
					iter++
					n := fmt.Sprintf("%08d", iter)
					out[i] = Scope{Type: TypeRepository, Name: strings.Repeat("x", wc.nameLen-len(n)) + n, Actions: []string{ActionPull}}
				}
				return out
			}
			spentSteps, _ := spent(p, wc.sub, "", scopes()[0])
			b.ReportAllocs()
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				sc := scopes()
				b.StartTimer()
				c0 := processCPU()
				p.Authorize(wc.sub, "", sc, now0)
				cpu += processCPU() - c0
			}
			b.ReportMetric(float64(spentSteps), "steps/scope")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}
