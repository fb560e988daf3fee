// Package storetest is the conformance suite every store.Store backend
// passes unchanged. A backend's test calls Run with a function that opens a
// fresh, empty store, and RunUnavailable with one whose server it can stop.
//
// Times in the suite are multiples of store.TimePrecision, the resolution
// every backend keeps, so round trips compare exactly.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// Open returns a fresh, empty store for one test; it registers its own
// cleanup (closing the store, dropping its data) with t.Cleanup.
type Open func(t *testing.T) store.Store

// base is a millisecond-aligned instant the suite derives times from.
var base = time.Date(2021, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

// Run runs the conformance suite: each subtest gets its own store from open.
// A store with the optional RulesVersion method (see store.Store) must not
// let it move by itself during a subtest: a backend whose version includes
// a time bucket pins that clock in the stores open returns.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Ping", testPing},
		{"CreateGetUser", testCreateGetUser},
		{"CreateUserSetsTimestamps", testCreateUserSetsTimestamps},
		{"CreateUserExists", testCreateUserExists},
		{"CreateUserInvalid", testCreateUserInvalid},
		{"NotFound", testNotFound},
		{"ListUsersSorted", testListUsersSorted},
		{"DeleteUser", testDeleteUser},
		{"UpdateUser", testUpdateUser},
		{"UpdateUserClearsFields", testUpdateUserClearsFields},
		{"UpdateUserFnError", testUpdateUserFnError},
		{"UpdateUserInvalid", testUpdateUserInvalid},
		{"UpdateUserConcurrent", testUpdateUserConcurrent},
		{"StatusAtExpiry", testStatusAtExpiry},
		{"DottedNames", testDottedNames},
		{"Rules", testRules},
		{"RuleExists", testRuleExists},
		{"RuleInvalid", testRuleInvalid},
		{"RemoveRule", testRemoveRule},
		{"ReplaceRules", testReplaceRules},
		{"ReplaceRulesDuplicate", testReplaceRulesDuplicate},
		{"RulesVersion", testRulesVersion},
		{"ExpiredContext", testExpiredContext},
		{"CanceledContext", testCanceledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func ptr[T any](v T) *T { return &v }

// fullUser has every field set.
func fullUser(name string) *store.User {
	return &store.User{
		Username:     name,
		PasswordHash: "$2a$10$abcdefghijklmnopqrstuuJ5Q0o7VgJmE4bEBnjbR1M5BqV7QAnPK",
		Labels: map[string][]string{
			"group": {"dev", "ops"},
			"team":  {"registry.example.com/team"},
		},
		Grants: []acl.Grant{
			{Pattern: "team/*", Actions: []string{acl.ActionPull, acl.ActionPush}},
			{Pattern: "other/app", Actions: []string{acl.ActionPull}, ExpiresAt: ptr(base.Add(time.Hour))},
		},
		ExpiresAt: ptr(base.Add(24 * time.Hour).In(time.FixedZone("X", 3600))),
		Disabled:  true,
		CreatedAt: base,
		UpdatedAt: base.Add(time.Second),
	}
}

func mustCreate(t *testing.T, s store.Store, u *store.User) {
	t.Helper()
	if err := s.CreateUser(ctx(t), u); err != nil {
		t.Fatalf("CreateUser(%q): %v", u.Username, err)
	}
}

func mustGet(t *testing.T, s store.Store, name string) *store.User {
	t.Helper()
	u, err := s.GetUser(ctx(t), name)
	if err != nil {
		t.Fatalf("GetUser(%q): %v", name, err)
	}
	return u
}

func mustRules(t *testing.T, s store.Store) []acl.Rule {
	t.Helper()
	rules, err := s.ListRules(ctx(t))
	if err != nil {
		t.Fatalf("ListRules: %v", err)
	}
	return rules
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one matching %v", what, err, target)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testCreateGetUser(t *testing.T, s store.Store) {
	want := fullUser("alice")
	mustCreate(t, s, fullUser("alice"))
	checkUser(t, "GetUser", mustGet(t, s, "alice"), want)

	// A minimal user: no labels, grants, expiry; active.
	mustCreate(t, s, &store.User{Username: "bob", PasswordHash: "$2y$05$x"})
	got := mustGet(t, s, "bob")
	if got.PasswordHash != "$2y$05$x" || len(got.Labels) != 0 || len(got.Grants) != 0 ||
		got.ExpiresAt != nil || got.Disabled {
		t.Errorf("GetUser(bob) = %+v, want only the username and hash set", got)
	}
	if st := got.Status(base); st != store.StatusActive {
		t.Errorf("bob Status = %s, want active", st)
	}
}

func testCreateUserSetsTimestamps(t *testing.T, s store.Store) {
	before := time.Now().Add(-store.TimePrecision)
	u := &store.User{Username: "carol", PasswordHash: "h"}
	mustCreate(t, s, u)
	after := time.Now().Add(store.TimePrecision)
	for name, ts := range map[string]time.Time{"CreatedAt": u.CreatedAt, "UpdatedAt": u.UpdatedAt} {
		if ts.Before(before) || ts.After(after) {
			t.Errorf("CreateUser set %s = %v, want between %v and %v", name, ts, before, after)
		}
	}
	got := mustGet(t, s, "carol")
	if !got.CreatedAt.Equal(u.CreatedAt) || !got.UpdatedAt.Equal(u.UpdatedAt) {
		t.Errorf("stored CreatedAt/UpdatedAt = %v/%v, CreateUser reported %v/%v",
			got.CreatedAt, got.UpdatedAt, u.CreatedAt, u.UpdatedAt)
	}
}

func testCreateUserExists(t *testing.T, s store.Store) {
	mustCreate(t, s, fullUser("alice"))
	err := s.CreateUser(ctx(t), &store.User{Username: "alice", PasswordHash: "other"})
	wantErr(t, "CreateUser(duplicate)", err, store.ErrExists)
	checkUser(t, "after duplicate create", mustGet(t, s, "alice"), fullUser("alice"))
}

func testCreateUserInvalid(t *testing.T, s store.Store) {
	for _, key := range []string{"a.b", "$set", ""} {
		u := &store.User{Username: "dave", PasswordHash: "h", Labels: map[string][]string{key: {"v"}}}
		wantErr(t, fmt.Sprintf("CreateUser(label key %q)", key), s.CreateUser(ctx(t), u), store.ErrInvalid)
	}
	wantErr(t, "CreateUser(empty name)", s.CreateUser(ctx(t), &store.User{PasswordHash: "h"}), store.ErrInvalid)
	if _, err := s.GetUser(ctx(t), "dave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an invalid user was stored: GetUser error %v", err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	mustCreate(t, s, &store.User{Username: "alice", PasswordHash: "h"})
	_, err := s.GetUser(ctx(t), "nobody")
	wantErr(t, "GetUser", err, store.ErrNotFound)
	_, err = s.GetUser(ctx(t), "Alice")
	wantErr(t, "GetUser(case differs)", err, store.ErrNotFound)
	wantErr(t, "DeleteUser", s.DeleteUser(ctx(t), "nobody"), store.ErrNotFound)
	called := false
	_, err = s.UpdateUser(ctx(t), "nobody", func(*store.User) error { called = true; return nil })
	wantErr(t, "UpdateUser", err, store.ErrNotFound)
	if called {
		t.Error("UpdateUser called fn for an unknown user")
	}
	wantErr(t, "RemoveRule", s.RemoveRule(ctx(t), 42), store.ErrNotFound)
}

func testListUsersSorted(t *testing.T, s store.Store) {
	users, err := s.ListUsers(ctx(t))
	if err != nil || len(users) != 0 {
		t.Fatalf("ListUsers on an empty store = %v, %v; want none", users, err)
	}
	names := []string{"mallory", "alice", "Zed", "bob.smith", "bob", "bob-2", "émile", "a_b"}
	for _, n := range names {
		u := fullUser(n)
		u.Labels["name"] = []string{n}
		mustCreate(t, s, u)
	}
	users, err = s.ListUsers(ctx(t))
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	var got []string
	for _, u := range users {
		got = append(got, u.Username)
		want := fullUser(u.Username)
		want.Labels["name"] = []string{u.Username}
		checkUser(t, "ListUsers entry", &u, want)
	}
	want := slices.Sorted(slices.Values(names)) // byte order
	if !slices.Equal(got, want) {
		t.Errorf("ListUsers order = %q, want %q", got, want)
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	mustCreate(t, s, fullUser("alice"))
	mustCreate(t, s, fullUser("bob"))
	if err := s.DeleteUser(ctx(t), "alice"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err := s.GetUser(ctx(t), "alice")
	wantErr(t, "GetUser after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteUser twice", s.DeleteUser(ctx(t), "alice"), store.ErrNotFound)
	checkUser(t, "other user after delete", mustGet(t, s, "bob"), fullUser("bob"))
	// The name is free again.
	mustCreate(t, s, &store.User{Username: "alice", PasswordHash: "new"})
	if got := mustGet(t, s, "alice"); got.PasswordHash != "new" || len(got.Grants) != 0 {
		t.Errorf("recreated user = %+v, want a fresh record", got)
	}
}

func testUpdateUser(t *testing.T, s store.Store) {
	orig := fullUser("alice")
	mustCreate(t, s, orig)
	time.Sleep(5 * store.TimePrecision)
	got, err := s.UpdateUser(ctx(t), "alice", func(u *store.User) error {
		u.Labels["group"] = append(u.Labels["group"], "qa")
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	want := fullUser("alice")
	want.Labels["group"] = []string{"dev", "ops", "qa"}
	want.UpdatedAt = got.UpdatedAt
	checkUser(t, "UpdateUser result", got, want)
	if !got.UpdatedAt.After(orig.UpdatedAt) {
		t.Errorf("UpdatedAt = %v, want after %v", got.UpdatedAt, orig.UpdatedAt)
	}
	if !got.CreatedAt.Equal(orig.CreatedAt) {
		t.Errorf("CreatedAt changed from %v to %v", orig.CreatedAt, got.CreatedAt)
	}
	checkUser(t, "GetUser after UpdateUser", mustGet(t, s, "alice"), got)

	// Every field can be changed.
	exp := base.Add(48 * time.Hour)
	got, err = s.UpdateUser(ctx(t), "alice", func(u *store.User) error {
		u.PasswordHash = "$2b$12$new"
		u.Labels = map[string][]string{"only": {"one"}}
		u.Grants = []acl.Grant{{Pattern: "x/*", Actions: []string{acl.ActionAll}, ExpiresAt: &exp}}
		u.ExpiresAt = &exp
		u.Disabled = false
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser(all fields): %v", err)
	}
	want = &store.User{
		Username: "alice", PasswordHash: "$2b$12$new",
		Labels:    map[string][]string{"only": {"one"}},
		Grants:    []acl.Grant{{Pattern: "x/*", Actions: []string{acl.ActionAll}, ExpiresAt: &exp}},
		ExpiresAt: &exp, CreatedAt: orig.CreatedAt, UpdatedAt: got.UpdatedAt,
	}
	checkUser(t, "UpdateUser(all fields)", got, want)
	checkUser(t, "GetUser after UpdateUser(all fields)", mustGet(t, s, "alice"), want)
}

func testUpdateUserClearsFields(t *testing.T, s store.Store) {
	mustCreate(t, s, fullUser("alice"))
	_, err := s.UpdateUser(ctx(t), "alice", func(u *store.User) error {
		u.Labels, u.Grants, u.ExpiresAt, u.Disabled = nil, nil, nil, false
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	got := mustGet(t, s, "alice")
	if len(got.Labels) != 0 || len(got.Grants) != 0 || got.ExpiresAt != nil || got.Disabled {
		t.Errorf("after clearing, user = %+v; want no labels, grants, expiry, not disabled", got)
	}
	if got.PasswordHash != fullUser("alice").PasswordHash {
		t.Errorf("PasswordHash = %q, want it unchanged", got.PasswordHash)
	}
	if st := got.Status(base); st != store.StatusActive {
		t.Errorf("Status = %s, want active", st)
	}
}

var errSentinel = errors.New("storetest: fn refused")

func testUpdateUserFnError(t *testing.T, s store.Store) {
	mustCreate(t, s, fullUser("alice"))
	_, err := s.UpdateUser(ctx(t), "alice", func(u *store.User) error {
		u.Disabled = false
		u.Labels = nil
		return errSentinel
	})
	wantErr(t, "UpdateUser(fn fails)", err, errSentinel)
	checkUser(t, "after failed update", mustGet(t, s, "alice"), fullUser("alice"))
}

func testUpdateUserInvalid(t *testing.T, s store.Store) {
	mustCreate(t, s, fullUser("alice"))
	_, err := s.UpdateUser(ctx(t), "alice", func(u *store.User) error {
		u.Username = "mallory"
		return nil
	})
	if err == nil {
		t.Error("UpdateUser renaming the user succeeded, want an error")
	}
	if _, err := s.GetUser(ctx(t), "mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(new name) error = %v, want ErrNotFound", err)
	}
	_, err = s.UpdateUser(ctx(t), "alice", func(u *store.User) error {
		u.Labels["bad.key"] = []string{"v"}
		return nil
	})
	wantErr(t, "UpdateUser(label key with '.')", err, store.ErrInvalid)
	checkUser(t, "after invalid updates", mustGet(t, s, "alice"), fullUser("alice"))
}

// testUpdateUserConcurrent proves UpdateUser loses no update: writers
// append distinct values to one label at once. UpdateUser may give up with
// ErrConflict under contention (the caller then retries), but a call that
// returned nil must be reflected in the end.
func testUpdateUserConcurrent(t *testing.T, s store.Store) {
	const writers = 20
	mustCreate(t, s, &store.User{Username: "alice", PasswordHash: "h", Labels: map[string][]string{"keep": {"me"}}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	errs := make([]error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			v := fmt.Sprintf("v%02d", i)
			for range 50 {
				_, err := s.UpdateUser(ctx(t), "alice", func(u *store.User) error {
					if u.Labels == nil {
						u.Labels = map[string][]string{}
					}
					u.Labels["n"] = append(u.Labels["n"], v)
					return nil
				})
				if !errors.Is(err, store.ErrConflict) {
					errs[i] = err
					return
				}
				mu.Lock()
				conflicts++
				mu.Unlock()
			}
			errs[i] = errors.New("still conflicting after 50 calls")
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if conflicts > 0 {
		t.Logf("UpdateUser returned ErrConflict %d times (retried)", conflicts)
	}
	got := mustGet(t, s, "alice")
	var want []string
	for i := range writers {
		want = append(want, fmt.Sprintf("v%02d", i))
	}
	if vals := slices.Sorted(slices.Values(got.Labels["n"])); !slices.Equal(vals, want) {
		t.Errorf("label n = %q, want each of %q exactly once (lost or doubled update)", vals, want)
	}
	if !slices.Equal(got.Labels["keep"], []string{"me"}) {
		t.Errorf("label keep = %q, want [me]", got.Labels["keep"])
	}
}

func testStatusAtExpiry(t *testing.T, s store.Store) {
	exp := base.Add(90 * 24 * time.Hour)
	u := &store.User{
		Username: "alice", PasswordHash: "h", ExpiresAt: &exp,
		Grants: []acl.Grant{{Pattern: "a/*", Actions: []string{acl.ActionPull}, ExpiresAt: &exp}},
	}
	mustCreate(t, s, u)
	got := mustGet(t, s, "alice")
	for _, c := range []struct {
		at   time.Time
		want store.Status
	}{
		{exp.Add(-time.Nanosecond), store.StatusActive},
		{exp, store.StatusExpired},
		{exp.Add(time.Nanosecond), store.StatusExpired},
	} {
		if st := got.Status(c.at); st != c.want {
			t.Errorf("Status(expiry%+v) = %s, want %s", c.at.Sub(exp), st, c.want)
		}
		if gexp := acl.Expired(got.Grants[0].ExpiresAt, c.at); gexp != (c.want == store.StatusExpired) {
			t.Errorf("grant Expired(expiry%+v) = %v", c.at.Sub(exp), gexp)
		}
	}
	if _, err := s.UpdateUser(ctx(t), "alice", func(u *store.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if st := mustGet(t, s, "alice").Status(exp.Add(-time.Hour)); st != store.StatusDisabled {
		t.Errorf("disabled user Status = %s, want disabled", st)
	}
}
