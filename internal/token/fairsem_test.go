package token

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestFairSemRoundRobin: with every slot taken, waiters are served one
// key at a time in turn, not in arrival order, so one key's long queue
// does not hold back another key.
func TestFairSemRoundRobin(t *testing.T) {
	s := newFairSem[string](1)
	ctx := t.Context()
	if err := s.acquire(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	served := make(chan string, 10)
	enqueue := func(k string) {
		queued := len(s.queues[k])
		go func() {
			if err := s.acquire(ctx, k); err != nil {
				t.Error(err)
				return
			}
			served <- k
		}()
		waitFor(t, func() bool {
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
		s.release()
		order = append(order, <-served)
	}
	if want := []string{"a", "b", "c", "a", "a", "a"}; !slices.Equal(order, want) {
		t.Fatalf("served %v, want %v", order, want)
	}
	s.release()
	if s.free != 1 || len(s.ring) != 0 || len(s.queues) != 0 {
		t.Fatalf("after all released: free %d, ring %v, queues %v", s.free, s.ring, s.queues)
	}
}

// TestFairSemCancel: a waiter that gives up leaves the queue, and a slot
// granted to it as it gives up is passed on, not lost.
func TestFairSemCancel(t *testing.T) {
	s := newFairSem[string](1)
	if err := s.acquire(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := s.acquire(ctx, "b"); err != context.DeadlineExceeded {
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
	s.release() // grants c
	s.mu.Lock()
	if s.dequeue("c", ch) {
		t.Fatal("granted waiter still queued")
	}
	s.releaseLocked() // what acquire does when its context ends after the grant
	s.mu.Unlock()
	if s.free != 1 {
		t.Fatalf("free %d after the cancelled grant was passed on, want 1", s.free)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
