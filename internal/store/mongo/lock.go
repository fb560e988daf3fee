package mongo

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/regctl/regctl/internal/store"
)

// Why UpdateUser takes a lock as well as checking rev: on MongoDB an update
// filtered on {username, rev} is an atomic compare-and-set, but FerretDB
// (1.x) evaluates the filter, then rewrites the document by _id without
// re-checking it, so two writers can both "match" the same rev and one
// update is lost. An insert into a unique index is atomic on both, so
// writers first insert a lock document {key, expires_at} into the locks
// collection, whose key is unique. The lock has a lease (2× the operation
// timeout, which bounds how long a holder can work) so a crashed holder
// blocks writers of that user only until it expires. The rev check stays:
// it guards against writers that do not lock (older regctl, scripts) and
// against a lease stolen by a badly skewed clock.

// DefaultLocksCollection holds UpdateUser's short-lived lock documents.
const DefaultLocksCollection = "regctl_locks"

const fKey = "key"

// lock takes the lock named key, waiting (within ctx) while another writer
// holds it, and returns the function that releases it. When ctx ends while
// the lock is held elsewhere the error wraps store.ErrConflict.
//
// Writers in this process queue on a local stripe first, so only one of
// them at a time competes for the lock document: failed inserts are
// writes, and FerretDB's SQLite backend stalls under write contention.
func (s *Store) lock(ctx context.Context, op, key string) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, s.wrapErr(op, err)
	}
	stripe := s.stripes[maphash.String(s.seed, key)%uint64(len(s.stripes))]
	select {
	case stripe <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: another writer in this process is still busy: %w", op, store.ErrConflict)
		}
		return nil, s.wrapErr(op, ctx.Err())
	}
	id, err := s.lockDoc(ctx, op, key)
	if err != nil {
		<-stripe
		return nil, err
	}
	return func() {
		s.unlock(ctx, id)
		<-stripe
	}, nil
}

// lockDoc inserts the lock document for key, waiting while another holds
// it; it polls with reads, writing only when the lock looks free.
func (s *Store) lockDoc(ctx context.Context, op, key string) (bson.ObjectID, error) {
	id := bson.NewObjectID()
	waiting := false        // the lock was found held by another writer
	var heldUntil time.Time // its expiry, once read
	// fail maps an error; once we are waiting for another writer, running
	// out of time is a conflict, not an unavailable store. The driver may
	// give up on a query a little before ctx's deadline (it keeps time for
	// the round trip), so its own timeout counts as running out too.
	fail := func(what string, err error) (bson.ObjectID, error) {
		if waiting && (errors.Is(ctx.Err(), context.DeadlineExceeded) || mongodrv.IsTimeout(err)) {
			until := ""
			if !heldUntil.IsZero() {
				until = " until " + heldUntil.UTC().Format(time.RFC3339)
			}
			return id, fmt.Errorf("%s: another writer holds the lock%s: %w", op, until, store.ErrConflict)
		}
		return id, s.wrapErr(op+what, err)
	}
	for attempt := 0; ; {
		_, err := s.locks.InsertOne(ctx, bson.D{
			{Key: "_id", Value: id},
			{Key: fKey, Value: key},
			{Key: fExpiresAt, Value: bson.NewDateTimeFromTime(s.now().Add(s.lease()))},
		})
		if err == nil {
			return id, nil
		}
		if !mongodrv.IsDuplicateKeyError(err) {
			return fail(": take lock", err)
		}
		waiting = true
		for ; ; attempt++ {
			var held struct {
				ID        bson.ObjectID `bson:"_id"`
				ExpiresAt time.Time     `bson:"expires_at"`
			}
			err = s.locks.FindOne(ctx, bson.D{{Key: fKey, Value: key}}).Decode(&held)
			if errors.Is(err, mongodrv.ErrNoDocuments) {
				break // released: try again
			}
			if err != nil {
				return fail(": read lock", err)
			}
			heldUntil = held.ExpiresAt
			if !s.now().Before(held.ExpiresAt) {
				// Its holder died. Deleting by the holder's own _id
				// cannot remove a newer lock of the same key.
				if _, err := s.locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: held.ID}}); err != nil {
					return fail(": remove expired lock", err)
				}
				break
			}
			if err := sleep(ctx, min(attempt, 6)); err != nil {
				return fail("", err)
			}
		}
	}
}

// unlock removes lock id even when ctx has ended.
func (s *Store) unlock(ctx context.Context, id bson.ObjectID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	// A failure leaves the lock to expire.
	_, _ = s.locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
}

// lease is how long a lock is valid: longer than any holder can work, as
// every operation is bounded by the timeout.
func (s *Store) lease() time.Duration { return 2 * s.timeout }
