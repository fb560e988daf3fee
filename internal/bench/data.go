package bench

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// The benchmark's data set is generated, never random: run twice, it is
// the same, and the load scripts can compute which rule a request hits.
//
// Users are user000000, user000001, ... Their passwords come from a small
// set (Passwords), so populating 100,000 users costs Passwords bcrypt
// hashes instead of 100,000.

// Passwords is the number of distinct passwords among the users.
const Passwords = 4

// Teams is the number of distinct "team" label values.
const Teams = 500

// UserName is the name of user i.
func UserName(i int) string { return fmt.Sprintf("user%06d", i) }

// Password is user i's password.
func Password(i int) string { return fmt.Sprintf("bench-password-%d", i%Passwords) }

// team is user i's team number.
func team(i int) int { return i % Teams }

// User returns user i with hashes[i%Passwords] as its password hash. Every
// user has a team label; one in ten also has the full-access label, one in
// five a personal grant, one in twenty an expiry (far in the future).
func User(i int, hashes []string, now time.Time) *store.User {
	u := &store.User{
		Username:     UserName(i),
		PasswordHash: hashes[i%len(hashes)],
		Labels:       map[string][]string{"team": {fmt.Sprintf("team%d", team(i))}},
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if i%10 == 3 {
		u.Labels["full-access"] = []string{"scratch/*", fmt.Sprintf("team%d-tmp/*", team(i))}
	}
	if i%5 == 1 {
		u.Grants = []acl.Grant{{Pattern: fmt.Sprintf("sandbox/%s/*", UserName(i)), Actions: []string{"pull", "push"}}}
	}
	if i%20 == 7 {
		exp := now.Add(10 * 365 * 24 * time.Hour)
		u.ExpiresAt = &exp
	}
	return u
}

// Rules returns n rules (n >= MinRules) in the mix a large installation might
// have, after docker_auth's generic rules:
//
//   - 40% personal namespaces: account userN may do anything in userN/*;
//   - 20% team projects: label team=teamK may pull and push projK/*;
//   - 20% regular expressions: any account may pull regK/(dev|staging)/...;
//   - 10% templated on a per-group label: ${labels:grpK}/*;
//   - 10% CI rules restricted by service and client CIDR: ciK/*;
//
// and, last, the catch-all "every account owns ${account}/*", which is
// what decides for the users without a personal rule.
func Rules(n int) []acl.Rule {
	sp := func(s string) *string { return &s }
	rules := []acl.Rule{
		{Seq: 1, Match: acl.Match{Account: sp("admin")}, Actions: []string{"*"}, Comment: "administrator"},
		{Seq: 2, Match: acl.Match{Account: sp(""), Name: sp("hello-world")}, Actions: []string{"pull"}, Comment: "anonymous demo image"},
		{Seq: 3, Match: acl.Match{Account: sp("/.+/"), Type: sp("registry"), Name: sp("catalog")}, Actions: []string{"*"}},
		{Seq: 4, Match: acl.Match{Name: sp("${labels:full-access}")}, Actions: []string{"*"}},
		{Seq: 5, Match: acl.Match{Name: sp("${labels:read-only-access}")}, Actions: []string{"pull"}},
		{Seq: 6, Match: acl.Match{Name: sp("blocked/*")}, Actions: []string{}, Comment: "explicit deny"},
	}
	body := n - len(rules) - 1
	for i := range body {
		r := acl.Rule{Seq: int64(100 + i)}
		switch i % 10 {
		case 0, 1, 2, 3:
			r.Match = acl.Match{Account: sp(UserName(i)), Name: sp(UserName(i) + "/*")}
			r.Actions = []string{"*"}
		case 4, 5:
			r.Match = acl.Match{Labels: map[string]string{"team": fmt.Sprintf("team%d", i%Teams)}, Name: sp(fmt.Sprintf("proj%d/*", i))}
			r.Actions = []string{"pull", "push"}
		case 6, 7:
			r.Match = acl.Match{Account: sp("/.+/"), Name: sp(fmt.Sprintf(`/reg%d\/(dev|staging)\/[a-z0-9-]+/`, i))}
			r.Actions = []string{"pull"}
		case 8:
			r.Match = acl.Match{Account: sp("/.+/"), Name: sp(fmt.Sprintf("${labels:grp%d}/*", i))}
			r.Actions = []string{"pull", "push"}
		case 9:
			r.Match = acl.Match{Service: sp(Service), IP: sp(fmt.Sprintf("10.%d.0.0/16", i%256)), Name: sp(fmt.Sprintf("ci%d/*", i))}
			r.Actions = []string{"pull", "push"}
		}
		rules = append(rules, r)
	}
	rules = append(rules, acl.Rule{
		Seq:     int64(100 + body + 1000),
		Match:   acl.Match{Account: sp("/.+/"), Name: sp("${account}/*")},
		Actions: []string{"*"},
		Comment: "personal namespace",
	})
	return rules
}

// MinRules is the smallest rule count Rules supports.
const MinRules = 20

// Service and Issuer are the token server's names in the benchmark.
const (
	Service = "registry.bench.test"
	Issuer  = "regctl-bench"
)

// Scope is the scope user i asks for in its req-th request, against
// Rules(rules). It cycles through the decisions the index has to make:
// the user's own namespace (a personal rule, or the catch-all at the
// end), its team's project (a label-keyed rule for one team in five, a
// miss for the others), a regex rule, and a repository no rule grants.
func Scope(i, req, rules int) string {
	switch req % 4 {
	case 0:
		return fmt.Sprintf("repository:%s/app:pull,push", UserName(i))
	case 1:
		return fmt.Sprintf("repository:proj%d/app:pull,push", team(i))
	case 2:
		groups := max((rules-7)/10, 1)
		return fmt.Sprintf("repository:reg%d/dev/api:pull", (i%groups)*10+6)
	default:
		return "repository:nothing/here:pull"
	}
}

// Subject is the acl subject of user u calling from 127.0.0.1, as the
// server builds it.
func Subject(u *store.User) acl.Subject {
	return acl.Subject{Account: u.Username, Labels: u.Labels, Grants: u.Grants, IP: netip.MustParseAddr("127.0.0.1")}
}
