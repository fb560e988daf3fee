package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
	"github.com/regctl/regctl/internal/testenv"
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
	clk := testenv.NewClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
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
	if _, _, err := a.authenticate(ctx, netip.Prefix{}, "waldi", "waldi-secret", f.clock.Now()); err != nil {
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
	if _, cached, err := a.authenticate(ctx, netip.Prefix{}, "waldi", "waldi-secret", f.clock.Now()); err != nil || !cached {
		t.Fatalf("after pruning: cached %t, %v", cached, err)
	}
}

// countingFeed counts what a store.RuleChangeSource hands the loader.
type countingFeed struct {
	*sqlite.Store
	full, changed, calls int
}

func (c *countingFeed) RuleChangesSince(ctx context.Context, since store.RuleCursor) (store.RuleChanges, error) {
	ch, err := c.Store.RuleChangesSince(ctx, since)
	c.calls++
	if ch.Full {
		c.full++
	}
	c.changed += len(ch.Rules)
	return ch, err
}

// TestReloadFromChangeFeed: on a store with a change feed (SQLite), a
// reload reads and compiles only the changed rules, keeps the policy when
// nothing changed, and starts afresh after a failure.
func TestReloadFromChangeFeed(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "regctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	var rules []acl.Rule
	for i := range 100 {
		rules = append(rules, acl.Rule{Seq: int64(i + 1), Match: acl.Match{Name: ptr(fmt.Sprintf("r%d/*", i))}, Actions: []string{"pull"}})
	}
	if err := st.ReplaceRules(ctx, rules); err != nil {
		t.Fatal(err)
	}
	feed := &countingFeed{Store: st}
	clk := testenv.NewClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	l := &policyLoader{rules: feed, interval: time.Second, timeout: 5 * time.Second, now: clk.Now, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	decide := func(name string) []string {
		t.Helper()
		p, err := l.current()
		if err != nil {
			t.Fatalf("current: %v", err)
		}
		return p.Authorize(acl.Subject{Account: "alice"}, "", []acl.Scope{{Type: acl.TypeRepository, Name: name, Actions: []string{"pull"}}}, clk.Now())[0].Actions
	}
	reload := func() {
		t.Helper()
		clk.Advance(time.Second)
		if err := l.reload(ctx); err != nil {
			t.Fatal(err)
		}
	}

	reload()
	if feed.full != 1 || feed.changed != 100 || len(decide("r5/app")) != 1 {
		t.Fatalf("first load: %d full reads, %d rules read", feed.full, feed.changed)
	}
	p1, _ := l.current()
	reload()
	if p2, _ := l.current(); p2 != p1 || feed.changed != 100 {
		t.Fatalf("nothing changed: same policy %t, %d rules read (want 100)", p2 == p1, feed.changed)
	}

	if err := st.RemoveRule(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if err := st.AddRule(ctx, acl.Rule{Seq: 1000, Match: acl.Match{Name: ptr("new/*")}, Actions: []string{"pull"}}); err != nil {
		t.Fatal(err)
	}
	reload()
	if feed.full != 1 || feed.changed != 101 {
		t.Fatalf("one rule added, one removed: %d full reads, %d rules read (want 1, 101)", feed.full, feed.changed)
	}
	if got := decide("r5/app"); len(got) != 0 {
		t.Errorf("removed rule still grants %v", got)
	}
	if got := decide("new/app"); len(got) != 1 {
		t.Errorf("added rule grants %v", got)
	}
	if p, _ := l.current(); p.Len() != 100 {
		t.Errorf("policy has %d rules, want 100", p.Len())
	}

	// A failure fails closed, and the next success reads everything again.
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if err := l.reload(ctx); err == nil {
		t.Fatal("reload from a closed store succeeded")
	}
	if _, err := l.current(); err == nil {
		t.Fatal("policy served after a failed reload")
	}
	if feed.Store, err = sqlite.Open(ctx, st.Path()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = feed.Store.Close(context.Background()) })
	reload()
	if feed.full != 2 || len(decide("new/app")) != 1 {
		t.Errorf("after recovery: %d full reads (want 2)", feed.full)
	}
}

// TestUserRefreshAhead: a user asked for after half the reload interval is
// fetched again in the background while the cached copy answers; a copy
// is never used past the interval; a user the store no longer has is
// dropped by the background fetch.
func TestUserRefreshAhead(t *testing.T) {
	f := newFixture(t) // user TTL 1 s
	a := f.srv.auth
	ctx := t.Context()
	gets := func() int {
		f.st.mu.Lock()
		defer f.st.mu.Unlock()
		return f.st.gets
	}
	waitGets := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); gets() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("store asked %d times, want %d", gets(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := a.user(ctx, "waldi"); err != nil {
		t.Fatal(err)
	}
	g := gets()
	f.clock.Advance(400 * time.Millisecond)
	if _, err := a.user(ctx, "waldi"); err != nil || gets() != g {
		t.Fatalf("young copy: %v, %d store queries (want %d)", err, gets(), g)
	}
	f.clock.Advance(200 * time.Millisecond) // 600 ms: refreshed in the background
	if _, err := a.user(ctx, "waldi"); err != nil {
		t.Fatal(err)
	}
	waitGets(g + 1)
	waitCached(t, a, "waldi", f.clock.Now())

	// 1.5 s after the first fetch, 0.9 s after the refresh: the copy
	// answers even with the store down (no query on the request's path).
	f.st.setDown(true)
	f.clock.Advance(900 * time.Millisecond)
	if _, err := a.user(ctx, "waldi"); err != nil {
		t.Fatalf("refreshed copy within the interval: %v", err)
	}
	// Past the interval: never the old copy; the store is down, so 503.
	f.clock.Advance(200 * time.Millisecond)
	if _, err := a.user(ctx, "waldi"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("copy past the interval with the store down: %v, want ErrUnavailable", err)
	}
	f.st.setDown(false)

	// A user deleted from the store is dropped by the background fetch.
	if _, err := a.user(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	f.st.mu.Lock()
	delete(f.st.users, "bob")
	f.st.mu.Unlock()
	f.clock.Advance(600 * time.Millisecond)
	g = gets()
	_, _ = a.user(ctx, "bob")
	waitGets(g + 1)
	for deadline := time.Now().Add(10 * time.Second); a.cache.Contains("bob"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("deleted user still cached")
		}
	}
	if _, err := a.user(ctx, "bob"); !errors.Is(err, errUnknownUser) {
		t.Fatalf("deleted user: %v, want errUnknownUser", err)
	}
}

// waitCached waits until the cached copy of name was fetched at at.
func waitCached(t *testing.T, a *authenticator, name string, at time.Time) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, ok := a.cache.Peek(name); ok && c.fetchedAt.Equal(at) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cached copy of %s not refreshed", name)
		}
	}
}
