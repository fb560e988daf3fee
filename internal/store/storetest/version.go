package storetest

import (
	"context"
	"testing"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// rulesVersioner is the optional method the token server polls before
// reloading the rules (see store.Store).
type rulesVersioner interface {
	RulesVersion(ctx context.Context) (int64, error)
}

// VersionCheck reads a rules version with poll now and returns a check
// that reads it again after a step (what) and reports an error unless it
// moved exactly when changed says it should. Only equality counts: a
// version need not increase.
func VersionCheck(t *testing.T, poll func() (int64, error)) func(what string, changed bool) {
	t.Helper()
	last, err := poll()
	if err != nil {
		t.Fatalf("RulesVersion: %v", err)
	}
	return func(what string, changed bool) {
		t.Helper()
		v, err := poll()
		if err != nil {
			t.Fatalf("RulesVersion after %s: %v", what, err)
		}
		switch {
		case changed && v == last:
			t.Errorf("after %s, RulesVersion = %d, unchanged", what, v)
		case !changed && v != last:
			t.Errorf("after %s, RulesVersion = %d, want %d (unchanged)", what, v, last)
		}
		last = v
	}
}

// testRulesVersion: every rule change through the store moves
// RulesVersion (a replacement by as many rules too), and nothing else
// does. Only equality is checked: a version need not increase.
func testRulesVersion(t *testing.T, s store.Store) {
	vs, ok := s.(rulesVersioner)
	if !ok {
		t.Skipf("%T has no RulesVersion", s)
	}
	check := VersionCheck(t, func() (int64, error) { return vs.RulesVersion(ctx(t)) })
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("nothing", false)

	must("AddRule", s.AddRule(ctx(t), fullRule(1)))
	check("AddRule", true)
	_ = s.AddRule(ctx(t), fullRule(1))
	check("a failed AddRule (duplicate seq)", false)
	_ = s.AddRule(ctx(t), acl.Rule{Seq: 9, Match: acl.Match{Labels: map[string]string{"a.b": "v"}}, Actions: []string{}})
	check("a failed AddRule (invalid)", false)
	_ = mustRules(t, s)
	check("ListRules", false)
	must("AddRule", s.AddRule(ctx(t), fullRule(2)))
	check("a second AddRule", true)

	// As many rules as before: the count alone does not tell.
	must("ReplaceRules", s.ReplaceRules(ctx(t), []acl.Rule{fullRule(3), fullRule(4)}))
	check("ReplaceRules by as many rules", true)
	_ = s.ReplaceRules(ctx(t), []acl.Rule{fullRule(5), fullRule(5)})
	check("a failed ReplaceRules (duplicate seq)", false)

	must("RemoveRule", s.RemoveRule(ctx(t), 3))
	check("RemoveRule", true)
	_ = s.RemoveRule(ctx(t), 3)
	check("a failed RemoveRule (unknown seq)", false)

	mustCreate(t, s, fullUser("alice"))
	check("CreateUser", false)
	_, err := s.UpdateUser(ctx(t), "alice", func(u *store.User) error { u.Disabled = false; return nil })
	must("UpdateUser", err)
	check("UpdateUser", false)
	must("DeleteUser", s.DeleteUser(ctx(t), "alice"))
	check("DeleteUser", false)

	must("ReplaceRules(empty)", s.ReplaceRules(ctx(t), nil))
	check("ReplaceRules(empty)", true)
	check("nothing", false)
}
