package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// fullRule has every field set.
func fullRule(seq int64) acl.Rule {
	return acl.Rule{
		Seq: seq,
		Match: acl.Match{
			Account: ptr("/^(alice|bob)$/"),
			Type:    ptr("repository"),
			Name:    ptr("${account}/v1.2/*"),
			Service: ptr("registry.example.com"),
			IP:      ptr("10.0.0.0/8"),
			Labels:  map[string]string{"group": "dev", "team": "${labels:group}.x"},
		},
		Actions:   []string{acl.ActionPull, acl.ActionPush},
		Comment:   "every field",
		ExpiresAt: ptr(base.Add(time.Hour)),
	}
}

func testRules(t *testing.T, s store.Store) {
	if rules := mustRules(t, s); len(rules) != 0 {
		t.Fatalf("ListRules on an empty store = %+v, want none", rules)
	}
	want := []acl.Rule{
		{Seq: -5, Match: acl.Match{}, Actions: []string{acl.ActionAll}},
		{Seq: 0, Match: acl.Match{Account: ptr("admin")}, Actions: []string{acl.ActionAll}, Comment: "admin"},
		fullRule(10),
		// An explicit deny: empty, non-nil actions.
		{Seq: 20, Match: acl.Match{Name: ptr("secret/*")}, Actions: []string{}},
		{Seq: 1 << 40, Match: acl.Match{Type: ptr("registry"), Name: ptr("catalog")}, Actions: []string{"*"}},
	}
	for _, i := range []int{2, 4, 0, 3, 1} { // out of order
		if err := s.AddRule(ctx(t), want[i]); err != nil {
			t.Fatalf("AddRule(seq %d): %v", want[i].Seq, err)
		}
	}
	checkRules(t, "ListRules", mustRules(t, s), want)
	if got := mustRules(t, s)[3]; got.Actions == nil {
		t.Error("explicit deny (empty actions) came back as nil actions")
	}
}

func testRuleExists(t *testing.T, s store.Store) {
	if err := s.AddRule(ctx(t), fullRule(7)); err != nil {
		t.Fatalf("AddRule: %v", err)
	}
	err := s.AddRule(ctx(t), acl.Rule{Seq: 7, Actions: []string{"pull"}})
	wantErr(t, "AddRule(duplicate seq)", err, store.ErrExists)
	checkRules(t, "after duplicate add", mustRules(t, s), []acl.Rule{fullRule(7)})
}

func testRuleInvalid(t *testing.T, s store.Store) {
	for _, key := range []string{"a.b", "$x", ""} {
		r := acl.Rule{Seq: 1, Match: acl.Match{Labels: map[string]string{key: "v"}}, Actions: []string{}}
		wantErr(t, "AddRule(label key "+key+")", s.AddRule(ctx(t), r), store.ErrInvalid)
		wantErr(t, "ReplaceRules(label key "+key+")", s.ReplaceRules(ctx(t), []acl.Rule{r}), store.ErrInvalid)
	}
	if rules := mustRules(t, s); len(rules) != 0 {
		t.Errorf("invalid rules were stored: %+v", rules)
	}
}

func testRemoveRule(t *testing.T, s store.Store) {
	for _, seq := range []int64{3, 1, 2} {
		if err := s.AddRule(ctx(t), fullRule(seq)); err != nil {
			t.Fatalf("AddRule: %v", err)
		}
	}
	if err := s.RemoveRule(ctx(t), 2); err != nil {
		t.Fatalf("RemoveRule: %v", err)
	}
	checkRules(t, "after remove", mustRules(t, s), []acl.Rule{fullRule(1), fullRule(3)})
	wantErr(t, "RemoveRule twice", s.RemoveRule(ctx(t), 2), store.ErrNotFound)
	// The seq is free again.
	if err := s.AddRule(ctx(t), fullRule(2)); err != nil {
		t.Fatalf("AddRule(removed seq): %v", err)
	}
	checkRules(t, "after re-add", mustRules(t, s), []acl.Rule{fullRule(1), fullRule(2), fullRule(3)})
}

func testReplaceRules(t *testing.T, s store.Store) {
	for _, seq := range []int64{1, 2, 3} {
		if err := s.AddRule(ctx(t), fullRule(seq)); err != nil {
			t.Fatalf("AddRule: %v", err)
		}
	}
	next := []acl.Rule{
		{Seq: 30, Match: acl.Match{Name: ptr("team.app/*")}, Actions: []string{"pull"}, Comment: "c"},
		fullRule(2),
		{Seq: 10, Match: acl.Match{Account: ptr("ci")}, Actions: []string{}},
	}
	if err := s.ReplaceRules(ctx(t), next); err != nil {
		t.Fatalf("ReplaceRules: %v", err)
	}
	checkRules(t, "after ReplaceRules", mustRules(t, s), []acl.Rule{next[1], next[2], next[0]})

	// The seq stays unique after a replacement.
	wantErr(t, "AddRule(duplicate after replace)", s.AddRule(ctx(t), fullRule(30)), store.ErrExists)
	if err := s.AddRule(ctx(t), fullRule(40)); err != nil {
		t.Fatalf("AddRule after replace: %v", err)
	}
	if err := s.RemoveRule(ctx(t), 10); err != nil {
		t.Fatalf("RemoveRule after replace: %v", err)
	}
	checkRules(t, "after add/remove", mustRules(t, s), []acl.Rule{next[1], next[0], fullRule(40)})

	for _, empty := range [][]acl.Rule{nil, {}} {
		if err := s.ReplaceRules(ctx(t), empty); err != nil {
			t.Fatalf("ReplaceRules(empty): %v", err)
		}
		if rules := mustRules(t, s); len(rules) != 0 {
			t.Errorf("after ReplaceRules(empty), rules = %+v", rules)
		}
	}
	if err := s.ReplaceRules(ctx(t), next); err != nil {
		t.Fatalf("ReplaceRules on an empty set: %v", err)
	}
	checkRules(t, "after refill", mustRules(t, s), []acl.Rule{next[1], next[2], next[0]})
}

func testReplaceRulesDuplicate(t *testing.T, s store.Store) {
	old := []acl.Rule{fullRule(1), fullRule(2)}
	if err := s.ReplaceRules(ctx(t), old); err != nil {
		t.Fatalf("ReplaceRules: %v", err)
	}
	err := s.ReplaceRules(ctx(t), []acl.Rule{fullRule(5), fullRule(6), fullRule(5)})
	wantErr(t, "ReplaceRules(duplicate seq)", err, store.ErrExists)
	checkRules(t, "after failed ReplaceRules", mustRules(t, s), old)
}

// testDottedNames: repository names, label values and patterns with dots,
// slashes, colons and '$' are values, never keys, and round-trip.
func testDottedNames(t *testing.T, s store.Store) {
	u := &store.User{
		Username:     "svc.deploy@example.com",
		PasswordHash: "h",
		Labels:       map[string][]string{"repo": {"registry.example.com:5000/team.app", "$literal"}},
		Grants: []acl.Grant{
			{Pattern: "registry.example.com:5000/team.app/*", Actions: []string{"pull"}},
			{Pattern: "v1.2.3/$x", Actions: []string{"push", "pull"}},
		},
		CreatedAt: base, UpdatedAt: base,
	}
	mustCreate(t, s, u)
	checkUser(t, "dotted user", mustGet(t, s, u.Username), u)
	r := acl.Rule{
		Seq:     1,
		Match:   acl.Match{Name: ptr("team.app/v1.2/*"), Labels: map[string]string{"repo": "*.example.com"}},
		Actions: []string{"pull"},
	}
	if err := s.AddRule(ctx(t), r); err != nil {
		t.Fatalf("AddRule: %v", err)
	}
	checkRules(t, "dotted rule", mustRules(t, s), []acl.Rule{r})
}

// testExpiredContext: a deadline that has passed is a timeout, which the
// contract reports as ErrUnavailable (and the context's error).
func testExpiredContext(t *testing.T, s store.Store) {
	c, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	for name, call := range calls(s) {
		err := call(c)
		if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s with an expired deadline: error %v, want ErrUnavailable and DeadlineExceeded", name, err)
		}
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	for name, call := range calls(s) {
		if err := call(c); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: error %v, want context.Canceled", name, err)
		}
	}
}

// calls returns one call of every method but Close, and of RulesVersion
// when the store has it.
func calls(s store.Store) map[string]func(context.Context) error {
	m := map[string]func(context.Context) error{
		"Ping":      s.Ping,
		"GetUser":   func(c context.Context) error { _, err := s.GetUser(c, "alice"); return err },
		"ListUsers": func(c context.Context) error { _, err := s.ListUsers(c); return err },
		"CreateUser": func(c context.Context) error {
			return s.CreateUser(c, &store.User{Username: "newcomer", PasswordHash: "h"})
		},
		"UpdateUser": func(c context.Context) error {
			_, err := s.UpdateUser(c, "alice", func(u *store.User) error { u.Disabled = true; return nil })
			return err
		},
		"DeleteUser":   func(c context.Context) error { return s.DeleteUser(c, "alice") },
		"ListRules":    func(c context.Context) error { _, err := s.ListRules(c); return err },
		"AddRule":      func(c context.Context) error { return s.AddRule(c, fullRule(99)) },
		"RemoveRule":   func(c context.Context) error { return s.RemoveRule(c, 1) },
		"ReplaceRules": func(c context.Context) error { return s.ReplaceRules(c, []acl.Rule{fullRule(1)}) },
	}
	if vs, ok := s.(rulesVersioner); ok {
		m["RulesVersion"] = func(c context.Context) error { _, err := vs.RulesVersion(c); return err }
	}
	if al, ok := s.(store.AttemptLog); ok {
		// The token server fails closed on these for password logins.
		m["AddAttempts"] = func(c context.Context) error {
			_, _, err := al.AddAttempts(c, base, []store.Attempt{{Key: "k", ExpiresAt: base.Add(time.Minute)}})
			return err
		}
		m["RemoveAttempts"] = func(c context.Context) error { return al.RemoveAttempts(c, []string{"1", "0123456789abcdef01234567"}) }
		m["PruneAttempts"] = func(c context.Context) error { return al.PruneAttempts(c, base) }
	}
	return m
}
