package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/store"
)

// maxMessageLen bounds an unavailability error message: one short line,
// not a driver's topology dump.
const maxMessageLen = 300

// RunUnavailable checks that a store fails closed: it opens a store with
// open, writes a user and a rule, calls stop (which must make the server
// unreachable, e.g. kill it), and then expects every method, called with a
// context that has no deadline, to return an error matching
// store.ErrUnavailable within the given bound, with a one-line message.
// The backend's own timeout must therefore be below within.
func RunUnavailable(t *testing.T, open Open, stop func(t *testing.T), within time.Duration) {
	s := open(t)
	mustCreate(t, s, fullUser("alice"))
	if err := s.AddRule(ctx(t), fullRule(1)); err != nil {
		t.Fatalf("AddRule: %v", err)
	}
	stop(t)

	var wg sync.WaitGroup
	for name, call := range calls(s) {
		wg.Go(func() {
			// The store's own timeout must end the call; the test's
			// context only stops a hung backend from hanging the test.
			c, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- call(c) }()
			select {
			case err := <-done:
				elapsed := time.Since(start)
				switch {
				case !errors.Is(err, store.ErrUnavailable):
					t.Errorf("%s on a stopped server: error %v, want one matching store.ErrUnavailable", name, err)
				case strings.Contains(err.Error(), "\n") || len(err.Error()) > maxMessageLen:
					t.Errorf("%s: error message is not one short line: %q", name, err)
				default:
					t.Logf("%s: %v after %v", name, err, elapsed.Round(time.Millisecond))
				}
				if elapsed > within {
					t.Errorf("%s took %v, want at most %v", name, elapsed, within)
				}
			case <-time.After(within + 5*time.Second):
				t.Errorf("%s on a stopped server did not return within %v", name, within)
			}
		})
	}
	wg.Wait()
}
