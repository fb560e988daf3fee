package storetest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// checkUser reports every field of got that differs from want. Times
// compare with Equal (backends may change the location); an empty and a
// nil Labels or Grants are the same.
func checkUser(t *testing.T, what string, got, want *store.User) {
	t.Helper()
	var diffs []string
	diff := func(field string, g, w any) { diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.Username != want.Username {
		diff("Username", got.Username, want.Username)
	}
	if got.PasswordHash != want.PasswordHash {
		diff("PasswordHash", got.PasswordHash, want.PasswordHash)
	}
	if !equalLabels(got.Labels, want.Labels) {
		diff("Labels", got.Labels, want.Labels)
	}
	if !slices.EqualFunc(got.Grants, want.Grants, equalGrant) {
		diff("Grants", fmtGrants(got.Grants), fmtGrants(want.Grants))
	}
	if !equalTimePtr(got.ExpiresAt, want.ExpiresAt) {
		diff("ExpiresAt", fmtTimePtr(got.ExpiresAt), fmtTimePtr(want.ExpiresAt))
	}
	if got.Disabled != want.Disabled {
		diff("Disabled", got.Disabled, want.Disabled)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		diff("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		diff("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	if len(diffs) > 0 {
		t.Errorf("%s: user %q:\n\t%s", what, want.Username, strings.Join(diffs, "\n\t"))
	}
}

func equalLabels(a, b map[string][]string) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}

func equalGrant(a, b acl.Grant) bool {
	return a.Pattern == b.Pattern && slices.Equal(a.Actions, b.Actions) &&
		(a.Actions == nil) == (b.Actions == nil) && equalTimePtr(a.ExpiresAt, b.ExpiresAt)
}

func equalTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "<nil>"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func fmtGrants(gs []acl.Grant) string {
	var parts []string
	for _, g := range gs {
		parts = append(parts, fmt.Sprintf("{%s %q exp=%s}", g.Pattern, g.Actions, fmtTimePtr(g.ExpiresAt)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// checkRules reports a difference between two rule lists, order included.
// Actions compare nil-ness too: [] is an explicit deny, nil is invalid.
func checkRules(t *testing.T, what string, got, want []acl.Rule) {
	t.Helper()
	if !slices.EqualFunc(got, want, equalRule) {
		t.Errorf("%s: rules\n\tgot  %s\n\twant %s", what, fmtRules(got), fmtRules(want))
	}
}

func equalRule(a, b acl.Rule) bool {
	return a.Seq == b.Seq && equalMatch(a.Match, b.Match) &&
		slices.Equal(a.Actions, b.Actions) && (a.Actions == nil) == (b.Actions == nil) &&
		a.Comment == b.Comment && equalTimePtr(a.ExpiresAt, b.ExpiresAt)
}

func equalMatch(a, b acl.Match) bool {
	eq := func(x, y *string) bool {
		if x == nil || y == nil {
			return x == y
		}
		return *x == *y
	}
	return eq(a.Account, b.Account) && eq(a.Type, b.Type) && eq(a.Name, b.Name) &&
		eq(a.Service, b.Service) && eq(a.IP, b.IP) && maps.Equal(a.Labels, b.Labels)
}

func fmtRules(rs []acl.Rule) string {
	var parts []string
	for _, r := range rs {
		s := func(p *string) string {
			if p == nil {
				return "-"
			}
			return *p
		}
		m := r.Match
		parts = append(parts, fmt.Sprintf("{seq=%d match=(%s %s %s %s %s %v) actions=%#v comment=%q exp=%s}",
			r.Seq, s(m.Account), s(m.Type), s(m.Name), s(m.Service), s(m.IP), m.Labels,
			r.Actions, r.Comment, fmtTimePtr(r.ExpiresAt)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
