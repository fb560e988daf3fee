package acl

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func sp(s string) *string { return &s }

func tp(t time.Time) *time.Time { return &t }

var now0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func mustScope(t testing.TB, s string) Scope {
	t.Helper()
	sc, err := ParseScope(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// rawScope splits a scope without validating it, for names ParseScope
// would reject but Authorize must still handle.
func rawScope(s string) Scope {
	first, last := strings.IndexByte(s, ':'), strings.LastIndexByte(s, ':')
	return Scope{Type: s[:first], Name: s[first+1 : last], Actions: strings.Split(s[last+1:], ",")}
}

func mustCompile(t testing.TB, rules []Rule) *Policy {
	t.Helper()
	p, err := Compile(rules)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// classicRules is the label setup from the docker_auth Mongo tutorial.
var classicRules = []Rule{
	{Seq: 10, Match: Match{Name: sp("${labels:full-access}")}, Actions: []string{"*"}, Comment: "full access"},
	{Seq: 20, Match: Match{Name: sp("${labels:read-only-access}")}, Actions: []string{"pull"}, Comment: "pull access"},
}

// referenceRules are docker_auth's reference configuration examples.
var referenceRules = []Rule{
	{Seq: 10, Match: Match{Account: sp("admin")}, Actions: []string{"*"}},
	{Seq: 20, Match: Match{Account: sp(""), Name: sp("hello-world")}, Actions: []string{"pull"}},
	{Seq: 30, Match: Match{Account: sp("/.+/"), Name: sp("${account}/*")}, Actions: []string{"*"}},
	{Seq: 40, Match: Match{Account: sp("/.+/"), Type: sp("registry"), Name: sp("catalog")}, Actions: []string{"*"}},
}

func TestAuthorize(t *testing.T) {
	waldi := Subject{Account: "waldi", Labels: map[string][]string{"full-access": {"test/*", "socke*"}}}
	reader := Subject{Account: "rita", Labels: map[string][]string{"read-only-access": {"prod/*"}}}
	admin := Subject{Account: "admin"}
	alice := Subject{Account: "alice"}
	anon := Subject{}

	many := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return out
	}

	tests := []struct {
		name    string
		rules   []Rule
		sub     Subject
		service string
		scope   string
		want    []string
	}{
		// The classic label scenario.
		{"waldi full access test", classicRules, waldi, "", "repository:test/app:pull,push", []string{"pull", "push"}},
		{"waldi full access socke", classicRules, waldi, "", "repository:socke1:push,delete", []string{"push", "delete"}},
		{"waldi star on test", classicRules, waldi, "", "repository:test/app:*", []string{"*"}},
		{"waldi glob stops at slash", classicRules, waldi, "", "repository:test/app/sub:pull", []string{}},
		{"waldi nothing on prod", classicRules, waldi, "", "repository:prod/app:pull", []string{}},
		{"reader pull on prod", classicRules, reader, "", "repository:prod/app:pull,push", []string{"pull"}},
		{"reader nothing on test", classicRules, reader, "", "repository:test/app:pull", []string{}},
		{"no labels nothing", classicRules, alice, "", "repository:test/app:pull", []string{}},

		// docker_auth reference examples.
		{"admin everything", referenceRules, admin, "", "repository:any/thing:pull,push,delete", []string{"pull", "push", "delete"}},
		{"admin catalog", referenceRules, admin, "", "registry:catalog:*", []string{"*"}},
		{"own namespace", referenceRules, alice, "", "repository:alice/app:pull,push", []string{"pull", "push"}},
		{"own namespace only one level", referenceRules, alice, "", "repository:alice/app/x:pull", []string{}},
		{"not someone else's namespace", referenceRules, alice, "", "repository:bob/app:pull", []string{}},
		{"anonymous pull hello-world", referenceRules, anon, "", "repository:hello-world:pull,push", []string{"pull"}},
		{"anonymous nothing else", referenceRules, anon, "", "repository:anon/app:pull", []string{}},
		{"anonymous no catalog", referenceRules, anon, "", "registry:catalog:*", []string{}},
		{"account rule is not anonymous", referenceRules, alice, "", "repository:hello-world:pull", []string{}},
		{"user catalog", referenceRules, alice, "", "registry:catalog:*", []string{"*"}},

		// IP and service.
		{"cidr inside", []Rule{{Seq: 1, Match: Match{IP: sp("10.0.0.0/8")}, Actions: []string{"pull"}}},
			Subject{IP: netip.MustParseAddr("10.1.2.3")}, "", "repository:a:pull,push", []string{"pull"}},
		{"cidr outside", []Rule{{Seq: 1, Match: Match{IP: sp("10.0.0.0/8")}, Actions: []string{"pull"}}},
			Subject{IP: netip.MustParseAddr("192.168.1.1")}, "", "repository:a:pull", []string{}},
		{"cidr mapped v4", []Rule{{Seq: 1, Match: Match{IP: sp("10.0.0.0/8")}, Actions: []string{"pull"}}},
			Subject{IP: netip.MustParseAddr("::ffff:10.1.2.3")}, "", "repository:a:pull", []string{"pull"}},
		{"cidr unknown client ip", []Rule{{Seq: 1, Match: Match{IP: sp("0.0.0.0/0")}, Actions: []string{"pull"}}},
			Subject{}, "", "repository:a:pull", []string{}},
		{"single ip", []Rule{{Seq: 1, Match: Match{IP: sp("127.0.0.1")}, Actions: []string{"pull"}}},
			Subject{IP: netip.MustParseAddr("127.0.0.1")}, "", "repository:a:pull", []string{"pull"}},
		{"single ip other", []Rule{{Seq: 1, Match: Match{IP: sp("127.0.0.1")}, Actions: []string{"pull"}}},
			Subject{IP: netip.MustParseAddr("127.0.0.2")}, "", "repository:a:pull", []string{}},
		{"v6 cidr", []Rule{{Seq: 1, Match: Match{IP: sp("2001:db8::/32")}, Actions: []string{"pull"}}},
			Subject{IP: netip.MustParseAddr("2001:db8::1%eth0")}, "", "repository:a:pull", []string{"pull"}},
		{"service matches", []Rule{{Seq: 1, Match: Match{Service: sp("registry.example.com")}, Actions: []string{"pull"}}},
			alice, "registry.example.com", "repository:a:pull", []string{"pull"}},
		{"service differs", []Rule{{Seq: 1, Match: Match{Service: sp("registry.example.com")}, Actions: []string{"pull"}}},
			alice, "other.example.com", "repository:a:pull", []string{}},
		{"service variable", []Rule{{Seq: 1, Match: Match{Name: sp("${service}/*")}, Actions: []string{"pull"}}},
			alice, "svc", "repository:svc/a:pull", []string{"pull"}},
		{"type variable", []Rule{{Seq: 1, Match: Match{Name: sp("${type}/*")}, Actions: []string{"pull"}}},
			alice, "", "repository:repository/a:pull", []string{"pull"}},

		// Regular expressions are anchored.
		{"regex whole", []Rule{{Seq: 1, Match: Match{Name: sp("/foo/")}, Actions: []string{"pull"}}}, alice, "", "repository:foo:pull", []string{"pull"}},
		{"regex not suffix", []Rule{{Seq: 1, Match: Match{Name: sp("/foo/")}, Actions: []string{"pull"}}}, alice, "", "repository:xfoo:pull", []string{}},
		{"regex not prefix", []Rule{{Seq: 1, Match: Match{Name: sp("/foo/")}, Actions: []string{"pull"}}}, alice, "", "repository:foox:pull", []string{}},
		{"regex alternation anchored", []Rule{{Seq: 1, Match: Match{Name: sp("/a|b/")}, Actions: []string{"pull"}}}, alice, "", "repository:ab:pull", []string{}},
		{"regex quotes account", []Rule{{Seq: 1, Match: Match{Name: sp(`/${account}\/.+/`)}, Actions: []string{"pull"}}},
			Subject{Account: "a.b"}, "", "repository:axb/c:pull", []string{}},
		{"regex quoted account matches itself", []Rule{{Seq: 1, Match: Match{Name: sp(`/${account}\/.+/`)}, Actions: []string{"pull"}}},
			Subject{Account: "a.b"}, "", "repository:a.b/c:pull", []string{"pull"}},
		{"regex group repeats whole value", []Rule{{Seq: 1, Match: Match{Name: sp(`/${account}+/`)}, Actions: []string{"pull"}}},
			Subject{Account: "ab"}, "", "repository:abab:pull", []string{"pull"}},
		{"regex label quoted", []Rule{{Seq: 1, Match: Match{Name: sp(`/${labels:p}/`)}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"p": {"a.*"}}}, "", "repository:abc:pull", []string{}},

		// Ordering.
		{"unsorted input is sorted", []Rule{
			{Seq: 20, Actions: []string{"*"}},
			{Seq: 10, Match: Match{Account: sp("alice")}, Actions: []string{}},
		}, alice, "", "repository:a:pull", []string{}},
		{"first match wins", []Rule{
			{Seq: 10, Match: Match{Name: sp("a/*")}, Actions: []string{"pull"}},
			{Seq: 20, Match: Match{Name: sp("a/b")}, Actions: []string{"*"}},
		}, alice, "", "repository:a/b:pull,push", []string{"pull"}},
		{"negative seq first", []Rule{
			{Seq: 0, Actions: []string{"pull"}},
			{Seq: -5, Actions: []string{"push"}},
		}, alice, "", "repository:a:pull,push", []string{"push"}},

		// Explicit deny, expiry, grants.
		{"explicit deny", []Rule{
			{Seq: 10, Match: Match{Account: sp("mallory")}, Actions: []string{}},
			{Seq: 20, Actions: []string{"*"}},
		}, Subject{Account: "mallory"}, "", "repository:a:pull", []string{}},
		{"explicit deny only for mallory", []Rule{
			{Seq: 10, Match: Match{Account: sp("mallory")}, Actions: []string{}},
			{Seq: 20, Actions: []string{"*"}},
		}, alice, "", "repository:a:pull", []string{"pull"}},
		{"explicit deny keeps grants", []Rule{
			{Seq: 10, Match: Match{Account: sp("mallory")}, Actions: []string{}},
			{Seq: 20, Actions: []string{"*"}},
		}, Subject{Account: "mallory", Grants: []Grant{{Pattern: "mallory/*", Actions: []string{"push"}}}}, "", "repository:mallory/x:pull,push", []string{"push"}},
		{"expired rule skipped", []Rule{
			{Seq: 10, Actions: []string{}, ExpiresAt: tp(now0.Add(-time.Second))},
			{Seq: 20, Actions: []string{"pull"}},
		}, alice, "", "repository:a:pull", []string{"pull"}},
		{"rule expiring now is expired", []Rule{
			{Seq: 10, Actions: []string{"pull"}, ExpiresAt: tp(now0)},
		}, alice, "", "repository:a:pull", []string{}},
		{"rule expiring later applies", []Rule{
			{Seq: 10, Actions: []string{"pull"}, ExpiresAt: tp(now0.Add(time.Nanosecond))},
		}, alice, "", "repository:a:pull", []string{"pull"}},
		{"expired grant ignored", nil,
			Subject{Grants: []Grant{{Pattern: "a", Actions: []string{"*"}, ExpiresAt: tp(now0)}}}, "", "repository:a:pull", []string{}},
		{"grant applies", nil,
			Subject{Grants: []Grant{{Pattern: "team/*", Actions: []string{"pull", "push"}}}}, "", "repository:team/x:pull,push,delete", []string{"pull", "push"}},
		{"grant union rule", []Rule{{Seq: 1, Actions: []string{"pull"}}},
			Subject{Grants: []Grant{{Pattern: "a", Actions: []string{"push"}}, {Pattern: "b", Actions: []string{"delete"}}}}, "", "repository:a:pull,push,delete", []string{"pull", "push"}},
		{"grants only repository", nil,
			Subject{Grants: []Grant{{Pattern: "*", Actions: []string{"*"}}}}, "", "registry:catalog:*", []string{}},
		{"grant star needs star for star", nil,
			Subject{Grants: []Grant{{Pattern: "a", Actions: []string{"pull", "push", "delete"}}}}, "", "repository:a:*", []string{}},

		// Labels.
		{"label combinations", []Rule{{Seq: 1, Match: Match{Name: sp("${labels:project}/${labels:group}-${labels:tier}")}, Actions: []string{"push", "pull"}}},
			Subject{Labels: map[string][]string{"project": {"p1", "p2"}, "group": {"g1"}, "tier": {"dev", "prod"}}}, "", "repository:p2/g1-prod:pull,push", []string{"pull", "push"}},
		{"label combinations miss", []Rule{{Seq: 1, Match: Match{Name: sp("${labels:project}/${labels:group}-${labels:tier}")}, Actions: []string{"push", "pull"}}},
			Subject{Labels: map[string][]string{"project": {"p1", "p2"}, "group": {"g1"}, "tier": {"dev", "prod"}}}, "", "repository:p2/g2-prod:pull", []string{}},
		{"label combination bound exceeded fails closed", []Rule{{Seq: 1, Match: Match{Name: sp("${labels:a}/${labels:b}")}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"a": many("a", 16), "b": many("b", 17)}}, "", "repository:a0/b0:pull", []string{}},
		{"label combination bound reached ok", []Rule{{Seq: 1, Match: Match{Name: sp("${labels:a}/${labels:b}")}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"a": many("a", 16), "b": many("b", 16)}}, "", "repository:a15/b15:pull", []string{"pull"}},
		{"same label twice takes one value", []Rule{{Seq: 1, Match: Match{Name: sp("${labels:t}/${labels:t}")}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"t": {"x", "y"}}}, "", "repository:x/y:pull", []string{}},
		{"same label twice", []Rule{{Seq: 1, Match: Match{Name: sp("${labels:t}/${labels:t}")}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"t": {"x", "y"}}}, "", "repository:y/y:pull", []string{"pull"}},
		{"match labels any value", []Rule{{Seq: 1, Match: Match{Labels: map[string]string{"team": "dev*"}}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"team": {"ops", "devs"}}}, "", "repository:a:pull", []string{"pull"}},
		{"match labels no value matches", []Rule{{Seq: 1, Match: Match{Labels: map[string]string{"team": "dev*"}}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"team": {"ops"}}}, "", "repository:a:pull", []string{}},
		{"match labels missing", []Rule{{Seq: 1, Match: Match{Labels: map[string]string{"team": "*"}}, Actions: []string{"pull"}}},
			alice, "", "repository:a:pull", []string{}},
		{"match labels all keys", []Rule{{Seq: 1, Match: Match{Labels: map[string]string{"team": "dev", "tier": "gold"}}, Actions: []string{"pull"}}},
			Subject{Labels: map[string][]string{"team": {"dev"}, "tier": {"silver"}}}, "", "repository:a:pull", []string{}},
		{"match labels with variable", []Rule{{Seq: 1, Match: Match{Labels: map[string]string{"owner": "${name}"}}, Actions: []string{"*"}}},
			Subject{Labels: map[string][]string{"owner": {"x/y", "a/b"}}}, "", "repository:a/b:delete", []string{"delete"}},

		// Escaping and empty patterns.
		{"account glob metachar escaped", []Rule{{Seq: 1, Match: Match{Name: sp("${account}/*")}, Actions: []string{"*"}}},
			Subject{Account: "*"}, "", "repository:bob/app:pull", []string{}},
		{"account glob metachar matches itself", []Rule{{Seq: 1, Match: Match{Name: sp("${account}/*")}, Actions: []string{"*"}}},
			Subject{Account: "a?"}, "", "repository:a?/app:pull", []string{"pull"}},
		{"empty pattern matches only empty", []Rule{{Seq: 1, Match: Match{Service: sp("")}, Actions: []string{"pull"}}},
			alice, "svc", "repository:a:pull", []string{}},
		{"empty pattern matches empty", []Rule{{Seq: 1, Match: Match{Service: sp("")}, Actions: []string{"pull"}}},
			alice, "", "repository:a:pull", []string{"pull"}},
		{"type field", []Rule{{Seq: 1, Match: Match{Type: sp("repository")}, Actions: []string{"pull"}}},
			alice, "", "registry:catalog:*", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.rules)
			sc, err := ParseScope(tt.scope)
			if err != nil {
				sc = rawScope(tt.scope)
			}
			got := p.Authorize(tt.sub, tt.service, []Scope{sc}, now0)
			if len(got) != 1 {
				t.Fatalf("Authorize returned %d scopes, want 1", len(got))
			}
			if got[0].Type != sc.Type || got[0].Name != sc.Name || got[0].Class != sc.Class {
				t.Fatalf("Authorize changed the resource: %+v", got[0])
			}
			if got[0].Actions == nil || !reflect.DeepEqual(got[0].Actions, tt.want) {
				t.Fatalf("Authorize(%s) = %#v, want %#v", tt.scope, got[0].Actions, tt.want)
			}
			ex := p.Explain(tt.sub, tt.service, sc, now0)
			if !reflect.DeepEqual(ex.Granted, tt.want) {
				t.Fatalf("Explain(%s).Granted = %#v, want %#v\nsteps: %+v", tt.scope, ex.Granted, tt.want, ex.Steps)
			}
		})
	}
}

func TestMixedStarActions(t *testing.T) {
	// A rule whose actions list "*" among others allows what it lists,
	// as docker_auth decides: only actions exactly ["*"] allow
	// everything. Grants, regctl's own, keep "*" as every action.
	rules := []Rule{
		{Seq: 10, Match: Match{Name: sp("mixed/*")}, Actions: []string{"pull", "*"}},
		{Seq: 20, Match: Match{Name: sp("star/*")}, Actions: []string{"*"}},
	}
	p := mustCompile(t, rules)
	tests := []struct {
		name   string
		grants []Grant
		scope  string
		want   []string
	}{
		{name: "mixed list allows only what it lists", scope: "repository:mixed/app:pull,push,delete", want: []string{"pull"}},
		{name: "push alone", scope: "repository:mixed/app:push", want: []string{}},
		{name: "requested star matches the listed star", scope: "repository:mixed/app:pull,*", want: []string{"pull", "*"}},
		{name: "exactly star allows all", scope: "repository:star/app:pull,push,delete,*", want: []string{"pull", "push", "delete", "*"}},
		{name: "a grant adds what it lists", grants: []Grant{{Pattern: "mixed/*", Actions: []string{"push"}}},
			scope: "repository:mixed/app:pull,push,delete", want: []string{"pull", "push"}},
		{name: "a grant with star among others allows all", grants: []Grant{{Pattern: "mixed/*", Actions: []string{"delete", "*"}}},
			scope: "repository:mixed/app:pull,push,delete", want: []string{"pull", "push", "delete"}},
		{name: "the rule's star does not widen a grant", grants: []Grant{{Pattern: "mixed/*", Actions: []string{"delete"}}},
			scope: "repository:mixed/app:pull,push,delete", want: []string{"pull", "delete"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := Subject{Account: "alice", Grants: tt.grants}
			sc := mustScope(t, tt.scope)
			if got := p.Authorize(sub, "", []Scope{sc}, now0)[0].Actions; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Authorize = %q, want %q", got, tt.want)
			}
			ex := p.Explain(sub, "", sc, now0)
			if !reflect.DeepEqual(ex.Granted, tt.want) {
				t.Errorf("Explain = %q, want %q", ex.Granted, tt.want)
			}
			if want := oracleAuthorize(rules, sub, "", sc, now0); !reflect.DeepEqual(want, tt.want) {
				t.Errorf("oracle = %q, want %q", want, tt.want)
			}
			last := ex.Steps[len(ex.Steps)-1]
			if mixed := strings.HasPrefix(tt.scope, "repository:mixed/"); mixed != strings.Contains(last.Reason, `are not exactly ["*"]`) {
				t.Errorf("rule step reason %q", last.Reason)
			}
		})
	}
}

func TestAuthorizeSeveralScopes(t *testing.T) {
	p := mustCompile(t, referenceRules)
	scopes, err := ParseScopes([]string{"repository:alice/app:pull,push repository(plugin):bob/x:pull registry:catalog:*"})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Authorize(Subject{Account: "alice"}, "", scopes, now0)
	want := []Scope{
		{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}},
		{Type: "repository", Class: "plugin", Name: "bob/x", Actions: []string{}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Authorize = %#v\nwant %#v", got, want)
	}
	// The scopes share a backing array; appending to one must not change
	// the next.
	_ = append(got[0].Actions, "delete")
	_ = append(got[1].Actions, "delete")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("appending to one scope's actions changed another: %#v", got)
	}
	if got := p.Authorize(Subject{}, "", nil, now0); got == nil || len(got) != 0 {
		t.Fatalf("Authorize(no scopes) = %#v, want empty", got)
	}
}

func TestNilPolicy(t *testing.T) {
	var p *Policy
	sub := Subject{Grants: []Grant{{Pattern: "a", Actions: []string{"pull"}}}}
	got := p.Authorize(sub, "", []Scope{mustScope(t, "repository:a:pull,push")}, now0)
	if !reflect.DeepEqual(got[0].Actions, []string{"pull"}) {
		t.Fatalf("nil policy Authorize = %#v", got)
	}
	if p.Len() != 0 || len(p.Rules()) != 0 {
		t.Fatal("nil policy has rules")
	}
	if ex := p.Explain(sub, "", mustScope(t, "repository:a:pull"), now0); !reflect.DeepEqual(ex.Granted, []string{"pull"}) || len(ex.Steps) != 1 {
		t.Fatalf("nil policy Explain = %+v", ex)
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name    string
		rules   []Rule
		sub     Subject
		service string
		scope   string
		granted []string
		steps   []Step
	}{
		{
			name:    "classic waldi on prod",
			rules:   classicRules,
			sub:     Subject{Account: "waldi", Labels: map[string][]string{"full-access": {"test/*", "socke*"}}},
			scope:   "repository:prod/app:pull",
			granted: []string{},
			steps: []Step{
				{Kind: "rule", Seq: 10, Pattern: "name=test/* | socke* (from ${labels:full-access})", Outcome: "no match",
					Reason: `name "prod/app" does not match "test/*" or "socke*"`},
				{Kind: "rule", Seq: 20, Pattern: "name=${labels:read-only-access} (no values for label read-only-access)", Outcome: "no match",
					Reason: "label read-only-access: user has no values"},
			},
		},
		{
			name:    "classic waldi on socke",
			rules:   classicRules,
			sub:     Subject{Account: "waldi", Labels: map[string][]string{"full-access": {"test/*", "socke*"}}},
			scope:   "repository:socke1:pull,push",
			granted: []string{"pull", "push"},
			steps: []Step{
				{Kind: "rule", Seq: 10, Pattern: "name=test/* | socke* (from ${labels:full-access})", Outcome: "matched",
					Reason: `name "socke1" matches "socke*" (from ${labels:full-access})`, Actions: []string{"pull", "push"}},
			},
		},
		{
			name: "grants expired rules and deny",
			rules: []Rule{
				{Seq: 5, Match: Match{Account: sp("alice"), IP: sp("10.0.0.0/8")}, Actions: []string{"*"}},
				{Seq: 10, Match: Match{Account: sp("bob")}, Actions: []string{"*"}},
				{Seq: 15, Actions: []string{"*"}, ExpiresAt: tp(now0.Add(-time.Hour))},
				{Seq: 20, Match: Match{Account: sp("/.+/"), Name: sp("/team\\/.*/")}, Actions: []string{}},
				{Seq: 30, Actions: []string{"*"}},
			},
			sub: Subject{Account: "alice", IP: netip.MustParseAddr("192.168.1.1"), Grants: []Grant{
				{Pattern: "team/*", Actions: []string{"push"}},
				{Pattern: "other/*", Actions: []string{"pull"}},
				{Pattern: "team/*", Actions: []string{"delete"}, ExpiresAt: tp(now0)},
			}},
			scope:   "repository:team/app:pull,push,delete",
			granted: []string{"push"},
			steps: []Step{
				{Kind: "grant", Pattern: "team/*", Outcome: "matched", Reason: `name "team/app" matches "team/*"`, Actions: []string{"push"}},
				{Kind: "grant", Pattern: "other/*", Outcome: "no match", Reason: `name "team/app" does not match "other/*"`},
				{Kind: "grant", Pattern: "team/*", Outcome: "expired", Reason: "expired 2026-01-02T15:04:05Z"},
				{Kind: "rule", Seq: 5, Pattern: "account=alice ip=10.0.0.0/8", Outcome: "no match", Reason: "ip 192.168.1.1 not in 10.0.0.0/8"},
				{Kind: "rule", Seq: 10, Pattern: "account=bob", Outcome: "no match", Reason: `account "alice" != "bob"`},
				{Kind: "rule", Seq: 15, Pattern: "(any)", Outcome: "expired", Reason: "expired 2026-01-02T14:04:05Z"},
				{Kind: "rule", Seq: 20, Pattern: `account=/.+/ name=/team\/.*/`, Outcome: "matched",
					Reason:  `account "alice" matches "/.+/"; name "team/app" matches "/team\\/.*/"; explicit deny: allows nothing and stops the search`,
					Actions: []string{}},
			},
		},
		{
			name:    "registry scope skips grants",
			rules:   []Rule{{Seq: 1, Match: Match{Type: sp("registry"), Labels: map[string]string{"role": "ops"}}, Actions: []string{"*"}}},
			sub:     Subject{Account: "a", Labels: map[string][]string{"role": {"dev", "ops"}}, Grants: []Grant{{Pattern: "*", Actions: []string{"*"}}}},
			scope:   "registry:catalog:*",
			granted: []string{"*"},
			steps: []Step{
				{Kind: "grant", Pattern: "*", Outcome: "no match", Reason: "grants apply only to repository scopes"},
				{Kind: "rule", Seq: 1, Pattern: "type=registry labels.role=ops", Outcome: "matched",
					Reason: `type "registry" == "registry"; label role: "ops" matches "ops"`, Actions: []string{"*"}},
			},
		},
		{
			// Too many combinations to try: the rule might match, so the
			// search stops there and the rules allow nothing (the later
			// rule would have allowed everything).
			name: "label bound",
			rules: []Rule{{Seq: 1, Match: Match{Name: sp("${labels:a}/${labels:b}")}, Actions: []string{}},
				{Seq: 2, Actions: []string{"*"}}},
			sub:     Subject{Labels: map[string][]string{"a": make([]string, 20), "b": make([]string, 20)}},
			scope:   "repository:x/y:pull",
			granted: []string{},
			steps: []Step{
				{Kind: "rule", Seq: 1, Pattern: "name=${labels:a}/${labels:b} (more than 256 expansions)", Outcome: "undecided",
					Reason: `name pattern "${labels:a}/${labels:b}" expands to more than 256 combinations: undecided; regctl cannot tell whether this rule matches: fails closed, the rules allow nothing`},
			},
		},
		{
			// ... unless another condition surely fails.
			name: "label bound with a failing condition",
			rules: []Rule{{Seq: 1, Match: Match{Name: sp("${labels:a}/${labels:b}"), Account: sp("bob")}, Actions: []string{}},
				{Seq: 2, Actions: []string{"*"}}},
			sub:     Subject{Account: "alice", Labels: map[string][]string{"a": make([]string, 20), "b": make([]string, 20)}},
			scope:   "repository:x/y:pull",
			granted: []string{"pull"},
			steps: []Step{
				{Kind: "rule", Seq: 1, Pattern: "account=bob name=${labels:a}/${labels:b} (more than 256 expansions)", Outcome: "no match",
					Reason: `account "alice" != "bob"`},
				{Kind: "rule", Seq: 2, Pattern: "(any)", Outcome: "matched", Reason: "rule has no conditions", Actions: []string{"pull"}},
			},
		},
		{
			// ... or the value lacks the glob's literal prefix, which the
			// candidate index files the rule under.
			name: "label bound with a literal prefix",
			rules: []Rule{{Seq: 1, Match: Match{Name: sp("foo/${labels:a}${labels:b}")}, Actions: []string{}},
				{Seq: 2, Actions: []string{"*"}}},
			sub:     Subject{Labels: map[string][]string{"a": make([]string, 20), "b": make([]string, 20)}},
			scope:   "repository:x/y:pull",
			granted: []string{"pull"},
			steps: []Step{
				{Kind: "rule", Seq: 1, Pattern: "name=foo/${labels:a}${labels:b} (more than 256 expansions)", Outcome: "no match",
					Reason: `name "x/y" does not start with "foo/", as every expansion of "foo/${labels:a}${labels:b}" does`},
				{Kind: "rule", Seq: 2, Pattern: "(any)", Outcome: "matched", Reason: "rule has no conditions", Actions: []string{"pull"}},
			},
		},
		{
			name:    "unknown ip and label values",
			rules:   []Rule{{Seq: 1, Match: Match{Labels: map[string]string{"team": "x*"}}, Actions: []string{"*"}}, {Seq: 2, Match: Match{IP: sp("::1")}, Actions: []string{"*"}}},
			sub:     Subject{Labels: map[string][]string{"team": {"a", "b"}}},
			scope:   "repository:x:pull",
			granted: []string{},
			steps: []Step{
				{Kind: "rule", Seq: 1, Pattern: "labels.team=x*", Outcome: "no match", Reason: `label team: none of ["a" "b"] matches "x*"`},
				{Kind: "rule", Seq: 2, Pattern: "ip=::1", Outcome: "no match", Reason: "client IP unknown; rule requires ip ::1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.rules)
			sc := mustScope(t, tt.scope)
			ex := p.Explain(tt.sub, tt.service, sc, now0)
			if !reflect.DeepEqual(ex.Scope, sc) {
				t.Errorf("Scope = %+v, want %+v", ex.Scope, sc)
			}
			if !reflect.DeepEqual(ex.Granted, tt.granted) {
				t.Errorf("Granted = %#v, want %#v", ex.Granted, tt.granted)
			}
			if len(ex.Steps) != len(tt.steps) {
				t.Fatalf("got %d steps, want %d:\n%s", len(ex.Steps), len(tt.steps), formatSteps(ex.Steps))
			}
			for i := range ex.Steps {
				if !reflect.DeepEqual(ex.Steps[i], tt.steps[i]) {
					t.Errorf("step %d:\n got %#v\nwant %#v", i, ex.Steps[i], tt.steps[i])
				}
			}
			if got := p.Authorize(tt.sub, tt.service, []Scope{sc}, now0)[0].Actions; !reflect.DeepEqual(got, ex.Granted) {
				t.Errorf("Authorize = %#v, Explain = %#v", got, ex.Granted)
			}
		})
	}
}

func formatSteps(steps []Step) string {
	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&b, "  %#v\n", s)
	}
	return b.String()
}

func TestTemplatedRegexTooComplexFailsClosed(t *testing.T) {
	p := mustCompile(t, []Rule{{Seq: 1, Match: Match{Name: sp("/(${account}){300}/")}, Actions: []string{"pull"}}})
	acct := "abcdefghijklmnopqrst"
	sc := Scope{Type: "repository", Name: strings.Repeat(acct, 300), Actions: []string{"pull"}}
	sub := Subject{Account: acct}
	if got := p.Authorize(sub, "", []Scope{sc}, now0)[0].Actions; len(got) != 0 {
		t.Fatalf("Authorize = %q, want nothing", got)
	}
	ex := p.Explain(sub, "", sc, now0)
	if len(ex.Steps) != 1 || !strings.Contains(ex.Steps[0].Reason, "invalid after substitution") || !strings.Contains(ex.Steps[0].Reason, "too complex") {
		t.Fatalf("Explain steps = %+v", ex.Steps)
	}
	// A short account stays within the bound and matches.
	sub.Account, sc.Name = "ab", strings.Repeat("ab", 300)
	if got := p.Authorize(sub, "", []Scope{sc}, now0)[0].Actions; !reflect.DeepEqual(got, []string{"pull"}) {
		t.Fatalf("Authorize = %q, want pull", got)
	}
}

func TestRulesSortedCopy(t *testing.T) {
	exp := now0.Add(time.Hour)
	in := []Rule{
		{Seq: 30, Match: Match{Name: sp("c")}, Actions: []string{"pull"}, Comment: "c"},
		{Seq: 10, Match: Match{Labels: map[string]string{"k": "v"}}, Actions: []string{}, ExpiresAt: &exp},
		{Seq: 20, Match: Match{Account: sp("b")}, Actions: []string{"*"}},
	}
	p := mustCompile(t, in)
	// Mutating the input must not affect the policy.
	*in[0].Match.Name = "changed"
	in[1].Match.Labels["k"] = "changed"
	in[2].Actions[0] = "pull"
	*in[1].ExpiresAt = now0

	if p.Len() != 3 {
		t.Fatalf("Len = %d", p.Len())
	}
	got := p.Rules()
	want := []Rule{
		{Seq: 10, Match: Match{Labels: map[string]string{"k": "v"}}, Actions: []string{}, ExpiresAt: tp(now0.Add(time.Hour))},
		{Seq: 20, Match: Match{Account: sp("b")}, Actions: []string{"*"}},
		{Seq: 30, Match: Match{Name: sp("c")}, Actions: []string{"pull"}, Comment: "c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Rules = %#v\nwant %#v", got, want)
	}
	// Mutating the result must not affect the policy either.
	got[0].Actions = append(got[0].Actions, "push")
	*got[1].Match.Account = "x"
	if again := p.Rules(); !reflect.DeepEqual(again, want) {
		t.Fatalf("Rules changed after mutating a returned copy: %#v", again)
	}
	if g := p.Authorize(Subject{Account: "b"}, "", []Scope{mustScope(t, "repository:c:pull")}, now0); !reflect.DeepEqual(g[0].Actions, []string{"pull"}) {
		t.Fatalf("Authorize after mutation = %#v", g[0].Actions)
	}
}

func TestConcurrentAuthorize(t *testing.T) {
	p := mustCompile(t, []Rule{
		{Seq: 1, Match: Match{Name: sp("/${account}\\/${labels:team}-.*/")}, Actions: []string{"pull"}},
		{Seq: 2, Match: Match{Name: sp("${labels:team}/*")}, Actions: []string{"*"}},
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				team := fmt.Sprintf("t%d", (g*300+i)%50)
				sub := Subject{Account: "u", Labels: map[string][]string{"team": {team}}}
				got := p.Authorize(sub, "", []Scope{{Type: "repository", Name: "u/" + team + "-x", Actions: []string{"pull", "push"}}}, now0)
				if !reflect.DeepEqual(got[0].Actions, []string{"pull"}) {
					t.Errorf("got %v", got[0].Actions)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestRegexCacheBounded(t *testing.T) {
	p := mustCompile(t, []Rule{{Seq: 1, Match: Match{Name: sp("/${account}/")}, Actions: []string{"pull"}}})
	for i := range 3 * regexCacheMax {
		acct := fmt.Sprintf("u%d", i)
		got := p.Authorize(Subject{Account: acct}, "", []Scope{{Type: "repository", Name: acct, Actions: []string{"pull"}}}, now0)
		if len(got[0].Actions) != 1 {
			t.Fatalf("account %s not granted", acct)
		}
	}
	n := 0
	p.cache.m.Range(func(_, _ any) bool { n++; return true })
	if n > regexCacheMax {
		t.Fatalf("regex cache holds %d entries, max %d", n, regexCacheMax)
	}
}

func TestIndexedMatchesLinear(t *testing.T) {
	// Rules designed to land in every index bucket.
	rules := []Rule{
		{Seq: 1, Match: Match{Account: sp("alice"), Name: sp("x/*")}, Actions: []string{"delete"}},
		{Seq: 2, Match: Match{Name: sp("team/app")}, Actions: []string{"pull"}},
		{Seq: 3, Match: Match{Name: sp("team/*")}, Actions: []string{"push"}},
		{Seq: 4, Match: Match{Name: sp("/te(am|st)\\/.*/")}, Actions: []string{"*"}},
		{Seq: 5, Match: Match{Name: sp("${labels:x}")}, Actions: []string{"pull"}},
		{Seq: 6, Match: Match{Labels: map[string]string{"y": "*"}}, Actions: []string{"push"}},
		{Seq: 7, Match: Match{Name: sp("*")}, Actions: []string{"delete"}},
		{Seq: 8, Match: Match{Name: sp("/(?i)TEAM\\/.*/")}, Actions: []string{"pull", "delete"}},
	}
	p := mustCompile(t, rules)
	if len(p.byAccount) == 0 || len(p.byPrefix) == 0 || len(p.byLabel) == 0 || len(p.unindexed) == 0 {
		t.Fatalf("index buckets not all used: account %d prefix %d label %d unindexed %d",
			len(p.byAccount), len(p.byPrefix), len(p.byLabel), len(p.unindexed))
	}
	if _, ok := p.byPrefix["te"]; !ok {
		t.Errorf("regex literal prefix not indexed: %v", p.byPrefix)
	}
	subs := []Subject{
		{Account: "alice"},
		{Account: "bob", Labels: map[string][]string{"x": {"team/*"}}},
		{Account: "bob", Labels: map[string][]string{"y": {"1"}}},
		{Account: "bob", Labels: map[string][]string{"y": {}}},
	}
	names := []string{"x/a", "team/app", "team/b", "test/c", "tea", "other", "team"}
	for _, sub := range subs {
		for _, n := range names {
			sc := Scope{Type: "repository", Name: n, Actions: []string{"pull", "push", "delete"}}
			a := p.evaluate([]string{}, &sub, "", &sc, now0, nil, false, nil)
			b := p.evaluate([]string{}, &sub, "", &sc, now0, nil, true, nil)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%+v %s: indexed %v, linear %v", sub, n, a, b)
			}
		}
	}
}
