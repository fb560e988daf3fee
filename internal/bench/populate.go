package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/store"
)

// Hashes returns one bcrypt hash at cost per distinct password.
func Hashes(cost int) ([]string, error) {
	hashes := make([]string, Passwords)
	for i := range hashes {
		h, err := bcrypt.GenerateFromPassword([]byte(Password(i)), cost)
		if err != nil {
			return nil, fmt.Errorf("bcrypt at cost %d: %w", cost, err)
		}
		hashes[i] = string(h)
	}
	return hashes, nil
}

// Populate writes users 0..users-1 and Rules(rules) through the store
// API: ReplaceRules once, CreateUser for each user from a few goroutines.
// A user that already exists is an error: the store must be empty.
// progress, if not nil, is called now and then with the users written.
func Populate(ctx context.Context, st store.Store, users, rules int, hashes []string, progress func(done int)) error {
	if err := st.ReplaceRules(ctx, Rules(rules)); err != nil {
		return fmt.Errorf("write %d rules: %w", rules, err)
	}
	now := store.Truncate(time.Now())
	const workers = 8
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= users || ctx.Err() != nil {
					return
				}
				if err := st.CreateUser(ctx, User(i, hashes, now)); err != nil {
					if errors.Is(err, store.ErrExists) {
						err = fmt.Errorf("%w (the benchmark needs an empty store)", err)
					}
					errc <- err
					cancel()
					return
				}
				if n := done.Add(1); progress != nil && n%10000 == 0 {
					progress(int(n))
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return fmt.Errorf("write users: %w", err)
	}
	return ctx.Err()
}
