package acl

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"repository:foo:pull",
		"repository:foo/bar:push,pull repository:foo/bar:delete",
		"repository:localhost:5000/foo/bar:pull",
		"repository(plugin):vieux/sshfs:pull\nregistry:catalog:*",
		"repository:[::1]:5000/a:*",
		"repository:a__b/c--d/e.f:pull,*",
		"repository:Foo:pull",
		"repository::pull",
		"registry:catalog:pull",
		"repository:a:pull,,push",
		"repository():a:pull",
		"repository(x:a:pull",
		"repository:a:pull repository(b):a:push",
		":::",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		values := strings.Split(s, "\n")
		scopes, err := ParseScopes(values)
		if err != nil {
			if scopes != nil {
				t.Fatalf("ParseScopes returned scopes with an error")
			}
			return
		}
		if len(scopes) > MaxScopes {
			t.Fatalf("%d scopes", len(scopes))
		}
		strs := make([]string, len(scopes))
		for i, sc := range scopes {
			if len(sc.Actions) == 0 || len(sc.Name) > MaxNameLength {
				t.Fatalf("bad scope %+v", sc)
			}
			if !reflect.DeepEqual(sc.Actions, actionsFromBits(bitsOf(sc.Actions))) {
				t.Fatalf("actions %q not canonical", sc.Actions)
			}
			strs[i] = sc.String()
			again, err := ParseScope(strs[i])
			if err != nil {
				t.Fatalf("ParseScope(%q) of String() of %+v: %v", strs[i], sc, err)
			}
			if !reflect.DeepEqual(again, sc) {
				t.Fatalf("round trip of %+v gave %+v", sc, again)
			}
		}
		again, err := ParseScopes([]string{strings.Join(strs, " ")})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", strs, err)
		}
		if !reflect.DeepEqual(again, scopes) {
			t.Fatalf("re-parse of %q gave %+v, want %+v", strs, again, scopes)
		}
	})
}

func FuzzCompile(f *testing.F) {
	f.Add("alice", "${account}/*", "team", "${labels:team}", "10.0.0.0/8", "alice", "dev*", "alice/app")
	f.Add("/.+/", "/${account}\\/.+/", "full-access", "test/*", "", "a.b", "test/*", "a.b/x")
	f.Add("", "hello-world", "", "", "", "", "", "hello-world")
	f.Add("[", "/(/", "k", "${foo}", "bad", "x", "y", "z")
	f.Add("a*", "${labels:a}/${labels:b}", "a", "${labels:b}", "::1", "a*", "[", "a/b")
	f.Add("${account", "/a)|(b/", "b", "/${labels:a}/", "2001:db8::/32", `a\`, "*", "ab")
	f.Add("/(?i)A/", "/${name}|x/", "c", "${type}${service}", "::ffff:10.0.0.0/104", "A", "x", "x")
	// Regular expressions whose matching cost explodes (found by fuzzing:
	// they stalled the fuzzer before MaxRegexInstructions existed).
	f.Add("/(x?){1000}/", "/(x?){1000}(y?){1000}/", "k", "/(${labels:k}){300}/", "", "x", "abcdefghij", strings.Repeat("x", 255))
	f.Fuzz(func(t *testing.T, account, name, labelKey, labelPat, ip, subAccount, labelVal, scopeName string) {
		r1 := Rule{Seq: 2, Match: Match{Account: &account, Name: &name}, Actions: []string{"pull"}}
		if labelKey != "" || labelPat != "" {
			r1.Match.Labels = map[string]string{labelKey: labelPat}
		}
		if ip != "" {
			r1.Match.IP = &ip
		}
		r2 := Rule{Seq: 1, Match: Match{Name: &labelPat, Service: &labelVal}, Actions: []string{"push"}}
		r3 := Rule{Seq: 3, Match: Match{Type: &account}, Actions: []string{}}
		rules := []Rule{r1, r2, r3}
		p, err := Compile(rules)
		if err != nil {
			if r1.Validate() == nil && r2.Validate() == nil && r3.Validate() == nil {
				t.Fatalf("Compile failed but every rule validates: %v", err)
			}
			return
		}
		sub := Subject{
			Account: subAccount,
			Labels:  map[string][]string{labelKey: {labelVal, name, labelPat}, "a": {labelVal, "x"}, "b": {scopeName}},
			Grants:  []Grant{{Pattern: name, Actions: []string{"delete"}}, {Pattern: labelVal, Actions: []string{"*"}}},
			IP:      netip.MustParseAddr("10.1.2.3"),
		}
		for _, typ := range []string{TypeRepository, TypeRegistry} {
			sc := Scope{Type: typ, Name: scopeName, Actions: []string{"pull", "push", "delete", "*"}}
			got := p.Authorize(sub, labelVal, []Scope{sc}, now0)[0].Actions
			ex := p.Explain(sub, labelVal, sc, now0)
			want := oracleAuthorize(rules, sub, labelVal, sc, now0)
			if overBudget(ex) {
				want = subsetOf(got, want)
			}
			if !reflect.DeepEqual(got, ex.Granted) || !reflect.DeepEqual(got, want) {
				t.Fatalf("Authorize %q, Explain %q, oracle %q\nsteps:\n%s", got, ex.Granted, want, formatSteps(ex.Steps))
			}
		}
	})
}
