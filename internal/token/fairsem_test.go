package token

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// TestFairSemRoundRobin: with every slot taken, a released slot goes to
// the waiting key holding the fewest slots, then round-robin, not in
// arrival order, so one key's long queue does not hold back another key.
func TestFairSemRoundRobin(t *testing.T) {
	for _, tt := range []struct {
		name  string
		slots int
		want  []string // served after each release, the first holder's slots released first
	}{
		{"one slot", 1, []string{"a", "b", "c", "a", "a", "a"}},  // all hold none: turn order
		{"two slots", 2, []string{"b", "a", "c", "a", "a", "a"}}, // b and c first while a holds more
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newFairSem[string](tt.slots, tt.slots)
			ctx := t.Context()
			var holders []string
			for range tt.slots {
				if err := s.acquire(ctx, "a"); err != nil {
					t.Fatal(err)
				}
				holders = append(holders, "a") // a holds every slot
			}
			served := make(chan string, 10)
			enqueue := func(k string) {
				s.mu.Lock()
				queued := len(s.queues[k])
				s.mu.Unlock()
				go func() {
					if err := s.acquire(ctx, k); err != nil {
						t.Error(err)
						return
					}
					served <- k
				}()
				testenv.WaitFor(t, func() bool {
					s.mu.Lock()
					defer s.mu.Unlock()
					return len(s.queues[k]) == queued+1
				})
			}
			for range 4 {
				enqueue("a") // a floods first
			}
			enqueue("b")
			enqueue("c")
			var order []string
			for range 6 {
				s.release(holders[0])
				holders = append(holders[1:], <-served)
				order = append(order, holders[len(holders)-1])
			}
			if !slices.Equal(order, tt.want) {
				t.Fatalf("served %v, want %v", order, tt.want)
			}
			for _, h := range holders {
				s.release(h)
			}
			if s.free != tt.slots || len(s.ring) != 0 || len(s.queues) != 0 || len(s.held) != 0 {
				t.Fatalf("after all released: free %d, ring %v, queues %v, held %v", s.free, s.ring, s.queues, s.held)
			}
		})
	}
}

// TestFairSemPerKey: one key never holds more than its share, so another
// key finds a free slot at once while the first one floods.
func TestFairSemPerKey(t *testing.T) {
	s := newFairSem[string](2, 1)
	ctx := t.Context()
	if err := s.acquire(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		if err := s.acquire(ctx, "a"); err == nil {
			got <- "a"
		}
	}()
	testenv.WaitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queues["a"]) == 1
	})
	if s.free != 1 {
		t.Fatalf("a's second request took the last slot (free %d)", s.free)
	}
	if err := s.acquire(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	s.release("b") // a is at its share: the slot goes back to the pool
	if s.free != 1 {
		t.Fatalf("free %d after b's release, want 1", s.free)
	}
	s.release("a") // now a's waiter gets a slot
	if k := <-got; k != "a" {
		t.Fatal(k)
	}
	s.release("a")
	if s.free != 2 || len(s.held) != 0 || len(s.ring) != 0 {
		t.Fatalf("after all released: free %d, held %v, ring %v", s.free, s.held, s.ring)
	}
}

// TestFairSemCancel: a waiter that gives up leaves the queue, and a slot
// granted to it as it gives up is passed on, not lost.
func TestFairSemCancel(t *testing.T) {
	s := newFairSem[string](1, 1)
	if err := s.acquire(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := s.acquire(ctx, "b"); err != context.DeadlineExceeded { //nolint:errorlint // the test pins that acquire returns ctx.Err() itself, unwrapped
		t.Fatalf("acquire with a passed deadline: %v", err)
	}
	if len(s.ring) != 0 || len(s.queues) != 0 {
		t.Fatalf("cancelled waiter still queued: ring %v", s.ring)
	}
	// Granted and cancelled at once: the slot must come back.
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.queues["c"] = []chan struct{}{ch}
	s.ring = []string{"c"}
	s.mu.Unlock()
	s.release("a") // grants c
	s.mu.Lock()
	if s.dequeue("c", ch) {
		t.Fatal("granted waiter still queued")
	}
	s.releaseLocked("c") // what acquire does when its context ends after the grant
	s.mu.Unlock()
	if s.free != 1 || len(s.held) != 0 {
		t.Fatalf("free %d after the cancelled grant was passed on, want 1", s.free)
	}
}
