package token

import (
	"context"
	"sync"
)

// fairSem is a counting semaphore that shares its slots fairly between
// keys (clients): a released slot goes to the waiting key that holds the
// fewest slots, and among those to the one whose turn it is (round-robin),
// whatever the number of requests each has queued. A client that floods
// the server with bcrypt work therefore delays another client by at most
// one slot's release, not by its whole queue. A free slot is taken at once
// when nobody waits (work-conserving).
type fairSem[K comparable] struct {
	mu     sync.Mutex
	free   int
	queues map[K][]chan struct{} // waiters by key, oldest first
	ring   []K                   // keys with waiters, in turn order
	held   map[K]int             // slots held, by key
}

func newFairSem[K comparable](slots int) *fairSem[K] {
	return &fairSem[K]{free: max(1, slots), queues: make(map[K][]chan struct{}), held: make(map[K]int)}
}

// acquire takes a slot for key k, waiting its turn, or returns ctx's error.
func (s *fairSem[K]) acquire(ctx context.Context, k K) error {
	s.mu.Lock()
	if s.free > 0 && len(s.ring) == 0 {
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
	if len(s.ring) == 0 {
		s.free++
		return
	}
	next := 0
	for i, rk := range s.ring {
		if s.held[rk] < s.held[s.ring[next]] {
			next = i
		}
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
