package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/storeerr"
)

// DefaultAttemptsCollection holds the login attempt log
// (store.AttemptLog): one document {_id, k: key, exp: expiry} per
// attempt. docker_auth ignores it.
const DefaultAttemptsCollection = "regctl_attempts"

const (
	fAttemptKey = "k"
	fAttemptExp = "exp"
)

var _ store.AttemptLog = (*Store)(nil)

// AddAttempts inserts one document per attempt, then counts the
// unexpired documents of each key. The insert comes first, so each count
// includes every insert that completed before it: the consistency
// store.AttemptLog promises, from inserts alone. (A counter document
// updated with findOneAndUpdate and $inc would cost one round trip, but
// FerretDB runs that as a read followed by a write, and loses most
// increments made at once; and with no TTL indexes on FerretDB, the
// counters would need pruning all the same.) The keys are values of the
// field k, never field names, so any address or account name is a valid
// key.
func (s *Store) AddAttempts(ctx context.Context, now time.Time, attempts []store.Attempt) ([]string, []int, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	const op = "add login attempts"
	if len(attempts) == 0 {
		return nil, nil, nil
	}
	ids := make([]string, len(attempts))
	docs := make([]any, len(attempts))
	keys := make(bson.A, len(attempts))
	for i, a := range attempts {
		id := bson.NewObjectID()
		ids[i] = id.Hex()
		keys[i] = a.Key
		docs[i] = bson.D{
			{Key: "_id", Value: id},
			{Key: fAttemptKey, Value: a.Key},
			{Key: fAttemptExp, Value: bson.NewDateTimeFromTime(store.Truncate(a.ExpiresAt))},
		}
	}
	if _, err := s.attempts.InsertMany(ctx, docs); err != nil {
		return nil, nil, s.wrapErr(op, err)
	}
	// One round trip counts every key.
	cur, err := s.attempts.Aggregate(ctx, mongodrv.Pipeline{
		{{Key: "$match", Value: bson.D{
			{Key: fAttemptKey, Value: bson.D{{Key: "$in", Value: keys}}},
			{Key: fAttemptExp, Value: bson.D{{Key: "$gt", Value: bson.NewDateTimeFromTime(store.Truncate(now))}}},
		}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + fAttemptKey}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, nil, s.wrapErr(op, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	byKey := make(map[string]int, len(attempts))
	for cur.Next(ctx) {
		var g struct {
			Key string `bson:"_id"`
			N   int    `bson:"n"`
		}
		if err := cur.Decode(&g); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op, err)
		}
		byKey[g.Key] = g.N
	}
	if err := cur.Err(); err != nil {
		return nil, nil, s.wrapErr(op, err)
	}
	counts := make([]int, len(attempts))
	for i, a := range attempts {
		counts[i] = byKey[a.Key]
		if counts[i] == 0 {
			// Our own record, inserted above, counts even if another
			// server's clock, ahead of ours, pruned it meanwhile.
			counts[i] = 1
		}
	}
	return ids, counts, nil
}

// RemoveAttempts deletes documents by ID.
func (s *Store) RemoveAttempts(ctx context.Context, ids []string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	oids := make(bson.A, 0, len(ids))
	for _, id := range ids {
		if oid, err := bson.ObjectIDFromHex(id); err == nil {
			oids = append(oids, oid)
		}
	}
	if len(oids) == 0 {
		return nil
	}
	_, err := s.attempts.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}})
	return s.wrapErr("remove login attempts", err)
}

// PruneAttempts deletes the expired documents: FerretDB has no TTL
// indexes, so the token servers prune the log themselves.
func (s *Store) PruneAttempts(ctx context.Context, now time.Time) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	_, err := s.attempts.DeleteMany(ctx, bson.D{{Key: fAttemptExp, Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(store.Truncate(now))}}}})
	return s.wrapErr("prune login attempts", err)
}

// ensureAttemptsIndex creates the index AddAttempts counts with, named
// as the driver would ("k_1_exp_1"). An index of that name with other
// options is left as it is: any index on k serves.
func (s *Store) ensureAttemptsIndex(ctx context.Context) error {
	_, err := s.attempts.Indexes().CreateOne(ctx, mongodrv.IndexModel{
		Keys:    bson.D{{Key: fAttemptKey, Value: 1}, {Key: fAttemptExp, Value: 1}},
		Options: options.Index().SetName(fAttemptKey + "_1_" + fAttemptExp + "_1"),
	})
	switch {
	case err == nil, hasCode(err, codeIndexOptionsConflict), hasCode(err, codeIndexKeySpecsConflict):
		return nil
	case unavailable(err) || errors.Is(err, context.Canceled):
		return s.wrapErr("open mongo store: create index on "+s.attempts.Name(), err)
	}
	return fmt.Errorf("open mongo store: create index on %s: %s", s.attempts.Name(), s.scrub(storeerr.OneLine(err.Error())))
}
