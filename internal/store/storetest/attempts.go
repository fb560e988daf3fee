package storetest

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/store"
)

// OpenAttemptLog returns two handles on one fresh, empty store (two
// connections, as two token servers on one store have); it registers
// their cleanup with t.Cleanup.
type OpenAttemptLog func(t *testing.T) (a, b store.AttemptLog)

// RunAttemptLog runs the conformance suite of store.AttemptLog: each
// subtest gets its own store from open.
func RunAttemptLog(t *testing.T, open OpenAttemptLog) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.AttemptLog, store.AttemptLog)
	}{
		{"Count", testAttemptsCount},
		{"Expiry", testAttemptsExpiry},
		{"Remove", testAttemptsRemove},
		{"Prune", testAttemptsPrune},
		{"Keys", testAttemptsKeys},
		{"Concurrent", testAttemptsConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := open(t)
			tt.fn(t, a, b)
		})
	}
}

// add records one attempt per key at now, each valid for ttl.
func add(t *testing.T, l store.AttemptLog, now time.Time, ttl time.Duration, keys ...string) ([]string, []int) {
	t.Helper()
	as := make([]store.Attempt, len(keys))
	for i, k := range keys {
		as[i] = store.Attempt{Key: k, ExpiresAt: now.Add(ttl)}
	}
	ids, counts, err := l.AddAttempts(ctx(t), now, as)
	if err != nil {
		t.Fatalf("AddAttempts(%q): %v", keys, err)
	}
	if len(ids) != len(keys) || len(counts) != len(keys) {
		t.Fatalf("AddAttempts(%q): %d ids and %d counts", keys, len(ids), len(counts))
	}
	return ids, counts
}

// testAttemptsCount: counts are per key, include the new record, and
// each handle sees the other's records.
func testAttemptsCount(t *testing.T, a, b store.AttemptLog) {
	var all []string
	for i, l := range []store.AttemptLog{a, b, a, b} {
		ids, counts := add(t, l, base, time.Minute, "ip 198.51.100.1/32", "account x")
		if want := []int{i + 1, i + 1}; !slices.Equal(counts, want) {
			t.Fatalf("add %d: counts %v, want %v", i+1, counts, want)
		}
		all = append(all, ids...)
	}
	if _, counts := add(t, b, base, time.Minute, "ip 198.51.100.2/32"); counts[0] != 1 {
		t.Errorf("another key: count %d, want 1", counts[0])
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != 8 {
		t.Errorf("IDs are not distinct: %q", all)
	}
}

// testAttemptsExpiry: a record counts until the instant it expires,
// exclusive.
func testAttemptsExpiry(t *testing.T, a, b store.AttemptLog) {
	add(t, a, base, time.Second, "k")
	add(t, a, base, 2*time.Second, "k")
	if _, c := add(t, b, base.Add(time.Second-time.Millisecond), time.Minute, "k"); c[0] != 3 {
		t.Errorf("before the first expiry: count %d, want 3", c[0])
	}
	if _, c := add(t, b, base.Add(time.Second), time.Minute, "k"); c[0] != 3 {
		t.Errorf("at the first expiry: count %d, want 3 (two of the first three and itself)", c[0])
	}
	if _, c := add(t, a, base.Add(time.Hour), time.Minute, "k"); c[0] != 1 {
		t.Errorf("an hour on: count %d, want 1", c[0])
	}
}

// testAttemptsRemove: a removed record no longer counts, whichever
// handle removes it; unknown IDs are ignored.
func testAttemptsRemove(t *testing.T, a, b store.AttemptLog) {
	ids1, _ := add(t, a, base, time.Minute, "k", "j")
	add(t, a, base, time.Minute, "k")
	if err := b.RemoveAttempts(ctx(t), ids1); err != nil {
		t.Fatalf("RemoveAttempts: %v", err)
	}
	if _, c := add(t, a, base, time.Minute, "k", "j"); !slices.Equal(c, []int{2, 1}) {
		t.Errorf("after removing one record of each key: counts %v, want [2 1]", c)
	}
	for _, ids := range [][]string{nil, ids1, {"", "not-an-id", "0123456789abcdef01234567", "99999999"}} {
		if err := a.RemoveAttempts(ctx(t), ids); err != nil {
			t.Errorf("RemoveAttempts(%q): %v", ids, err)
		}
	}
	if _, c := add(t, b, base, time.Minute, "k"); c[0] != 3 {
		t.Errorf("after removing unknown IDs: count %d, want 3", c[0])
	}
}

// testAttemptsPrune: pruning deletes the expired records only.
func testAttemptsPrune(t *testing.T, a, b store.AttemptLog) {
	old, _ := add(t, a, base, time.Second, "k")
	add(t, a, base, time.Hour, "k")
	if err := b.PruneAttempts(ctx(t), base.Add(time.Second)); err != nil {
		t.Fatalf("PruneAttempts: %v", err)
	}
	if err := b.PruneAttempts(ctx(t), base.Add(time.Second)); err != nil {
		t.Fatalf("PruneAttempts again: %v", err)
	}
	// Counted as of before the expiry, the pruned record is gone.
	if _, c := add(t, a, base, time.Minute, "k"); c[0] != 2 {
		t.Errorf("after pruning: count %d, want 2", c[0])
	}
	if err := a.RemoveAttempts(ctx(t), old); err != nil {
		t.Errorf("RemoveAttempts of a pruned record: %v", err)
	}
}

// testAttemptsKeys: any string is a key, stored as a value: dots,
// dollars, NUL-free Unicode, and an account name of 4 KiB.
func testAttemptsKeys(t *testing.T, a, b store.AttemptLog) {
	keys := []string{"ip 2001:db8::/64", "account a.b.c", "$where", "account $set.x", "ключ", strings.Repeat("n", 4096), ""}
	for i := range 2 {
		_, c := add(t, []store.AttemptLog{a, b}[i], base, time.Minute, keys...)
		for j, n := range c {
			if n != i+1 {
				t.Errorf("add %d of key %.20q: count %d, want %d", i+1, keys[j], n, i+1)
			}
		}
	}
}

// testAttemptsConcurrent: adds from both handles at once are all kept
// and counted consistently: sorted, the counts are at least 1, 2, 3...
// (the i-th insert to complete counts at least i), so a caller that
// admits counts up to N admits at most N. A counter whose concurrent
// increments are lost fails this.
func testAttemptsConcurrent(t *testing.T, a, b store.AttemptLog) {
	const goroutines, each = 16, 15
	var (
		mu     sync.Mutex
		counts []int
		wg     sync.WaitGroup
	)
	for g := range goroutines {
		l := []store.AttemptLog{a, b}[g%2]
		wg.Go(func() {
			for range each {
				_, c, err := l.AddAttempts(ctx(t), base, []store.Attempt{{Key: "ip 198.51.100.9/32", ExpiresAt: base.Add(time.Hour)}})
				if err != nil {
					t.Errorf("AddAttempts: %v", err)
					return
				}
				mu.Lock()
				counts = append(counts, c[0])
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	slices.Sort(counts)
	const total = goroutines * each
	for i, c := range counts {
		if c < i+1 {
			t.Fatalf("sorted counts %v: the %d-th is %d, want at least %d", counts, i+1, c, i+1)
		}
	}
	if _, c := add(t, a, base, time.Hour, "ip 198.51.100.9/32"); c[0] != total+1 {
		t.Errorf("after %d concurrent adds: count %d, want %d (adds were lost)", total, c[0], total+1)
	}
	admitted := 0
	for _, c := range counts {
		if c <= 20 {
			admitted++
		}
	}
	t.Logf("%d concurrent adds from two handles; %d counted within a limit of 20", total, admitted)
}
