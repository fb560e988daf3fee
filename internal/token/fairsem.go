package token

import (
	"context"
	"sync"
)

// fairSem is a counting semaphore that shares its slots fairly between
// keys (clients). One key holds at most perKey slots at once, so with
// perKey below the number of slots a single client flooding the server
// with bcrypt work always leaves a slot for the others. A released slot
// goes to the waiting key that holds the fewest slots, and among those to
// the one whose turn it is (round-robin), whatever the number of requests
// each has queued: many flooding clients delay another by at most one
// slot's release, not by their whole queues.
type fairSem[K comparable] struct {
	mu     sync.Mutex
	free   int
	perKey int
	queues map[K][]chan struct{} // waiters by key, oldest first
	ring   []K                   // keys with waiters, in turn order
	held   map[K]int             // slots held, by key
}

// newFairSem returns a semaphore of slots slots, at most perKey of them
// held by one key (both at least 1).
func newFairSem[K comparable](slots, perKey int) *fairSem[K] {
	return &fairSem[K]{free: max(1, slots), perKey: max(1, perKey), queues: make(map[K][]chan struct{}), held: make(map[K]int)}
}

// acquire takes a slot for key k, waiting its turn, or returns ctx's error.
func (s *fairSem[K]) acquire(ctx context.Context, k K) error {
	s.mu.Lock()
	// A free slot means that every waiter's key holds its share.
	if s.free > 0 && s.held[k] < s.perKey {
		s.free--
		s.held[k]++
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	q, waiting := s.queues[k]
	s.queues[k] = append(q, ch)
	if !waiting {
		s.ring = append(s.ring, k)
	}
	s.mu.Unlock()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dequeue(k, ch) {
		return ctx.Err()
	}
	// Granted while giving up: pass the slot on.
	s.releaseLocked(k)
	return ctx.Err()
}

// dequeue removes ch from k's queue; false if it is not there (granted).
// Call with s.mu held.
func (s *fairSem[K]) dequeue(k K, ch chan struct{}) bool {
	q := s.queues[k]
	for i, c := range q {
		if c != ch {
			continue
		}
		q = append(q[:i], q[i+1:]...)
		if len(q) > 0 {
			s.queues[k] = q
			return true
		}
		delete(s.queues, k)
		for j, rk := range s.ring {
			if rk == k {
				s.ring = append(s.ring[:j], s.ring[j+1:]...)
				break
			}
		}
		return true
	}
	return false
}

// release returns the slot that key k holds: to the oldest waiter of the
// key served next, or to the pool.
func (s *fairSem[K]) release(k K) {
	s.mu.Lock()
	s.releaseLocked(k)
	s.mu.Unlock()
}

func (s *fairSem[K]) releaseLocked(k K) {
	if s.held[k]--; s.held[k] <= 0 {
		delete(s.held, k)
	}
	next := -1
	for i, rk := range s.ring {
		if h := s.held[rk]; h < s.perKey && (next < 0 || h < s.held[s.ring[next]]) {
			next = i
		}
	}
	if next < 0 {
		s.free++
		return
	}
	n := s.ring[next]
	q := s.queues[n]
	ch := q[0]
	s.ring = append(s.ring[:next], s.ring[next+1:]...)
	if len(q) > 1 {
		s.queues[n] = q[1:]
		s.ring = append(s.ring, n) // n's next waiter goes to the back
	} else {
		delete(s.queues, n)
	}
	s.held[n]++
	ch <- struct{}{} // buffered: never blocks
}
