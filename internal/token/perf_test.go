package token

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// versionedRules is a RuleSource with a change counter, like the SQLite
// store's RulesVersion.
type versionedRules struct {
	mu      sync.Mutex
	rules   []acl.Rule
	version int64
	lists   int
	down    bool
}

func (v *versionedRules) ListRules(context.Context) ([]acl.Rule, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.down {
		return nil, store.ErrUnavailable
	}
	v.lists++
	return append([]acl.Rule(nil), v.rules...), nil
}

func (v *versionedRules) RulesVersion(context.Context) (int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.down {
		return 0, store.ErrUnavailable
	}
	return v.version, nil
}

func (v *versionedRules) set(rules ...acl.Rule) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rules = rules
	v.version++
}

func TestReloadSkipsUnchangedVersion(t *testing.T) {
	src := &versionedRules{}
	src.set(acl.Rule{Seq: 1, Match: acl.Match{Name: ptr("a/*")}, Actions: []string{"pull"}})
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	l := &policyLoader{rules: src, interval: time.Second, timeout: time.Second, now: clk.Now, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := t.Context()

	if err := l.reload(ctx); err != nil {
		t.Fatal(err)
	}
	p1, err := l.current()
	if err != nil || p1.Len() != 1 || src.lists != 1 {
		t.Fatalf("first load: %v, %d rules, %d lists", err, p1.Len(), src.lists)
	}

	// Unchanged: no listing, no compiling, the same policy, fresh again.
	for range 3 {
		clk.Advance(time.Second)
		if err := l.reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Second) // past the staleness bound of the first load
	if err := l.reload(ctx); err != nil {
		t.Fatal(err)
	}
	p2, err := l.current()
	if err != nil || p2 != p1 || src.lists != 1 {
		t.Fatalf("unchanged version: err %v, same policy %t, %d lists (want 1)", err, p2 == p1, src.lists)
	}

	// Changed: listed and compiled again.
	src.set(acl.Rule{Seq: 1, Match: acl.Match{Name: ptr("a/*")}, Actions: []string{"pull"}},
		acl.Rule{Seq: 2, Match: acl.Match{Name: ptr("b/*")}, Actions: []string{"pull"}})
	if err := l.reload(ctx); err != nil {
		t.Fatal(err)
	}
	p3, err := l.current()
	if err != nil || p3.Len() != 2 || src.lists != 2 {
		t.Fatalf("changed version: %v, %d rules, %d lists", err, p3.Len(), src.lists)
	}

	// The version query is the health check: a store that stops
	// answering fails closed, and recovering lists the rules again even
	// though the version did not move.
	src.mu.Lock()
	src.down = true
	src.mu.Unlock()
	if err := l.reload(ctx); err == nil {
		t.Fatal("reload with the store down succeeded")
	}
	if _, err := l.current(); err == nil {
		t.Fatal("policy served while the store is down")
	}
	src.mu.Lock()
	src.down = false
	src.mu.Unlock()
	if err := l.reload(ctx); err != nil {
		t.Fatal(err)
	}
	if p4, err := l.current(); err != nil || p4.Len() != 2 || src.lists != 3 {
		t.Fatalf("after recovery: %v, %d lists (want 3)", err, src.lists)
	}
}

func TestPruneUserCache(t *testing.T) {
	f := newFixture(t)
	a := f.srv.auth
	ctx := t.Context()
	if _, _, err := a.authenticate(ctx, "waldi", "waldi-secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.user(ctx, "reader"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(500 * time.Millisecond) // the fixture's TTL is 1s
	if _, err := a.user(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(600 * time.Millisecond)
	a.prune()
	if keys := a.cache.Keys(); len(keys) != 1 || keys[0] != "bob" {
		t.Fatalf("after pruning: %v, want [bob]", keys)
	}
	// Verified credentials are kept: a pruned user is fetched again and
	// its password still checked without bcrypt.
	if _, cached, err := a.authenticate(ctx, "waldi", "waldi-secret"); err != nil || !cached {
		t.Fatalf("after pruning: cached %t, %v", cached, err)
	}
}
