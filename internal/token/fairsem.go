package token

import (
	"context"
	"sync"
)

// fairSem is a counting semaphore that serves its waiters round-robin by
// key (the client): when slots are short, each client with someone waiting
// gets the next free slot in turn, whatever the number of requests it has
// queued. A client that floods the server with bcrypt work therefore
// delays another client by at most one slot's release, not by its whole
// queue. A free slot is taken at once when nobody waits (work-conserving).
type fairSem[K comparable] struct {
	mu     sync.Mutex
	free   int
	queues map[K][]chan struct{} // waiters by key, oldest first
	ring   []K                   // keys with waiters, next to serve first
}

func newFairSem[K comparable](slots int) *fairSem[K] {
	return &fairSem[K]{free: max(1, slots), queues: make(map[K][]chan struct{})}
}

// acquire takes a slot for key k, waiting its turn, or returns ctx's error.
func (s *fairSem[K]) acquire(ctx context.Context, k K) error {
	s.mu.Lock()
	if s.free > 0 && len(s.ring) == 0 {
		s.free--
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
	s.releaseLocked()
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

// release returns a slot: to the oldest waiter of the next key in turn, or
// to the pool.
func (s *fairSem[K]) release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *fairSem[K]) releaseLocked() {
	if len(s.ring) == 0 {
		s.free++
		return
	}
	k := s.ring[0]
	q := s.queues[k]
	ch := q[0]
	if len(q) > 1 {
		s.queues[k] = q[1:]
		s.ring = append(s.ring[1:], k) // k's next waiter goes to the back
	} else {
		delete(s.queues, k)
		s.ring = s.ring[1:]
	}
	ch <- struct{}{} // buffered: never blocks
}
