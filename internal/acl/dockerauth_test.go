package acl

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// A reading of docker_auth's static ACL authorizer
// (cesanta/docker_auth auth_server/authz/acl.go, commit deeecf29), kept
// close to its code: aclAuthorizer.Authorize, MatchConditions.Matches,
// matchString, matchStringWithLabelPermutations, matchIP and matchLabels.
// Capture-group variables (${name:1}) are left out: regctl refuses them.

// dockerAuthAuthorize returns what docker_auth grants for sc. Its MongoDB
// backend sorts the entries by seq; the static acl keeps file order, which
// regctl import docker-auth turns into seq order.
func dockerAuthAuthorize(rules []Rule, account string, labels map[string][]string, ip netip.Addr, service string, sc Scope) []string {
	sorted := slices.Clone(rules)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Seq < sorted[j].Seq })
	for _, e := range sorted {
		if dockerAuthMatches(e.Match, account, labels, ip, service, sc) {
			return dockerAuthActions(sc.Actions, e.Actions)
		}
	}
	return nil // NoMatch: nothing
}

func dockerAuthMatches(mc Match, account string, labels map[string][]string, ip netip.Addr, service string, sc Scope) bool {
	vars := []string{
		"${account}", regexp.QuoteMeta(account),
		"${type}", regexp.QuoteMeta(sc.Type),
		"${name}", regexp.QuoteMeta(sc.Name),
		"${service}", regexp.QuoteMeta(service),
	}
	labelMap := map[string][]string{}
	for label, values := range labels {
		labelMap[fmt.Sprintf("${labels:%s}", label)] = values
	}
	var nip net.IP
	if ip.IsValid() {
		nip = net.IP(ip.AsSlice())
	}
	return dockerAuthMatchPermutations(mc.Account, account, vars, labelMap) &&
		dockerAuthMatchPermutations(mc.Type, sc.Type, vars, labelMap) &&
		dockerAuthMatchPermutations(mc.Name, sc.Name, vars, labelMap) &&
		dockerAuthMatchPermutations(mc.Service, service, vars, labelMap) &&
		dockerAuthMatchIP(mc.IP, nip) &&
		dockerAuthMatchLabels(mc.Labels, labels, vars)
}

func dockerAuthMatchString(pp *string, s string, vars []string) bool {
	if pp == nil {
		return true
	}
	p := strings.NewReplacer(vars...).Replace(*pp)
	var matched bool
	var err error
	if len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/' {
		matched, err = regexp.MatchString(p[1:len(p)-1], s)
	} else {
		matched, err = path.Match(p, s)
	}
	return err == nil && matched
}

func dockerAuthMatchPermutations(pp *string, s string, vars []string, labelMap map[string][]string) bool {
	if dockerAuthMatchString(pp, s, vars) {
		return true
	}
	// Every combination of the values of the label variables in the
	// pattern (a cartesian product; none when a label has no values).
	var keys []string
	for placeholder := range labelMap {
		if pp != nil && strings.Contains(*pp, placeholder) {
			keys = append(keys, placeholder)
		}
	}
	if len(keys) == 0 {
		return false
	}
	var try func(i int, vars []string) bool
	try = func(i int, vars []string) bool {
		if i == len(keys) {
			return dockerAuthMatchString(pp, s, vars)
		}
		for _, v := range labelMap[keys[i]] {
			if try(i+1, append(slices.Clip(vars), keys[i], v)) {
				return true
			}
		}
		return false
	}
	return try(0, vars)
}

func dockerAuthMatchIP(ipp *string, ip net.IP) bool {
	if ipp == nil {
		return true
	}
	if ip == nil {
		return false
	}
	ipnet := net.IPNet{IP: net.ParseIP(*ipp)}
	if ipnet.IP != nil {
		if ipnet.IP.To4() != nil {
			ipnet.Mask = net.CIDRMask(32, 32)
		} else {
			ipnet.Mask = net.CIDRMask(128, 128)
		}
		return ipnet.Contains(ip)
	}
	_, n, err := net.ParseCIDR(*ipp)
	return err == nil && n.Contains(ip)
}

func dockerAuthMatchLabels(ml map[string]string, rl map[string][]string, vars []string) bool {
	for label, pattern := range ml {
		matched := false
		for _, lv := range rl[label] {
			if dockerAuthMatchString(&pattern, lv, vars) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

// spellable drops the rules that regctl, differing from docker_auth on
// purpose as Compile documents, reads in a way docker_auth has no spelling
// for: a regex that uses a label variable (regctl quotes label values,
// docker_auth inserts them raw) and a match.labels pattern that uses one
// (docker_auth does not expand it).
func spellable(rules []Rule) []Rule {
	var out []Rule
	for _, r := range rules {
		m := r.Match
		ok := true
		for _, p := range []*string{m.Account, m.Type, m.Name, m.Service} {
			ok = ok && (p == nil || !isRegexPattern(*p) || !strings.Contains(*p, "${labels:"))
		}
		for _, p := range m.Labels {
			ok = ok && !strings.Contains(p, "${labels:")
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

// asDockerAuth returns spellable rules as docker_auth must be given them
// to mean what they mean to regctl at now: expired rules dropped (docker_auth
// has no expiry) and regctl's anchored /RE/ written /^(?:RE)$/ (regctl
// import docker-auth makes the opposite rewrite).
func asDockerAuth(rules []Rule, now time.Time) []Rule {
	anchor := func(p *string) *string {
		if p == nil || !isRegexPattern(*p) {
			return p
		}
		return sp("/^(?:" + (*p)[1:len(*p)-1] + ")$/")
	}
	var out []Rule
	for _, r := range rules {
		if Expired(r.ExpiresAt, now) {
			continue
		}
		r.ExpiresAt = nil
		m := r.Match
		m.Account, m.Type, m.Name, m.Service = anchor(m.Account), anchor(m.Type), anchor(m.Name), anchor(m.Service)
		if len(m.Labels) > 0 {
			m.Labels = maps.Clone(m.Labels)
			for k, p := range m.Labels {
				m.Labels[k] = *anchor(&p)
			}
		}
		r.Match = m
		out = append(out, r)
	}
	return out
}

// grantAllowed is what the subject's matching, unexpired grants allow on
// sc, in regctl's meaning: a grant listing "*" allows everything.
func grantAllowed(sub Subject, sc Scope, now time.Time) map[string]bool {
	out := map[string]bool{}
	if sc.Type != TypeRepository {
		return out
	}
	for _, g := range sub.Grants {
		if ok, _ := path.Match(g.Pattern, sc.Name); !ok || Expired(g.ExpiresAt, now) {
			continue
		}
		for _, a := range sc.Actions {
			if slices.Contains(g.Actions, a) || slices.Contains(g.Actions, "*") {
				out[a] = true
			}
		}
	}
	return out
}

// TestNeverGrantsMoreThanDockerAuth decides random rule sets and requests
// with regctl and with the reading of docker_auth above. Without grants
// regctl must grant exactly what docker_auth grants, and with them exactly
// that plus what the grants allow — except where a scope fails closed
// (out of budget, or at a rule it cannot decide: see Policy), where it may
// grant less, never more.
func TestNeverGrantsMoreThanDockerAuth(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	stats := map[string]int{}
	for i := range *aclCases {
		c := randomCase(r)
		if r.IntN(3) == 0 {
			// Lists that mix "*" with other actions, and requests for
			// "*", are what the two readings once disagreed on.
			for k := range c.rules {
				c.rules[k].Actions = pick(r, [][]string{{"*"}, {"pull", "*"}, {"*", "push"}, {"*", "*"}, {"pull"}, {}})
			}
			c.scope.Actions = pick(r, [][]string{{"pull", "push", "delete"}, {"push"}, {"*"}, {"pull", "*"}})
		}
		c.rules = spellable(c.rules)
		da := asDockerAuth(c.rules, c.now)
		p, err := Compile(c.rules)
		if err != nil {
			t.Fatalf("case %d: Compile: %v", i, err)
		}
		docker := dockerAuthAuthorize(da, c.sub.Account, c.sub.Labels, c.sub.IP, c.service, c.scope)
		want := []string{}
		for _, a := range c.scope.Actions {
			if (slices.Contains(docker, a) || grantAllowed(c.sub, c.scope, c.now)[a]) && !slices.Contains(want, a) {
				want = append(want, a)
			}
		}
		got := p.Authorize(c.sub, c.service, []Scope{c.scope}, c.now)[0].Actions
		if failedClosed(p.Explain(c.sub, c.service, c.scope, c.now)) {
			stats["failed closed"]++
			want = subsetOf(got, want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: regctl grants %q, docker_auth %q (plus grants: %q)\nrules %s\nas docker_auth %s\nsubject %+v\nservice %q scope %v",
				i, got, docker, want, fmtRules(c.rules), fmtRules(da), c.sub, c.service, c.scope)
		}
		if len(docker) > 0 {
			stats["docker_auth grants"]++
		}
		if slices.ContainsFunc(da, func(r Rule) bool { return MixesAll(r.Actions) }) {
			stats["mixed lists"]++
		}
	}
	t.Logf("%d cases: %v", *aclCases, stats)
	if stats["docker_auth grants"] < *aclCases/10 || stats["mixed lists"] < *aclCases/10 {
		t.Errorf("the cases exercise too little: %v", stats)
	}
}
