package mongo

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultMetaCollection holds the rules change marker, the document
// {_id: "rules", version: <random int64>} (see RulesVersion). docker_auth
// ignores it.
const DefaultMetaCollection = "regctl_meta"

// ExternalEditBound is how long RulesVersion may go on returning the same
// value after a rule was changed in place by another program (mongosh,
// docker_auth tooling), which does not touch the change marker and does not
// change the number of rules. It is the length of RulesVersion's time
// bucket.
const ExternalEditBound = 30 * time.Second

const (
	metaRulesID = "rules"
	fVersion    = "version"
)

// RulesVersion returns a value that changes when the rule set changes, so
// a reader (the token server's reload) can poll it, two cheap queries, and
// call ListRules only when it moved. It is not ordered: compare it for
// equality only. It combines, in one hash:
//
//   - the change marker, a document of the meta collection (regctl_meta)
//     that every rule change made through this package replaces with a
//     fresh random value after the change is written: AddRule, RemoveRule
//     and ReplaceRules (so regctl acl, regctl import and regctl store
//     migrate), from any process. It is a random value, not a counter,
//     because FerretDB loses concurrent $inc updates, and a counter that
//     lost one could come back to a value a reader has already seen;
//   - the number of documents in the acl collection ($collStats, which
//     decodes no document: see countRules), so a document inserted or
//     deleted by another program is seen at once;
//   - the time bucket, the clock's time divided by ExternalEditBound, so
//     anything else is seen when the bucket changes. Each Store shifts its
//     buckets by a random phase, so that token servers sharing a database
//     do not all list the rules at the same instant.
//
// A poller that reads it every interval before listing therefore sees
// changes made through regctl, and inserts or deletes by other programs,
// at its next poll. A change by another program that leaves the number of
// rules as it was (an update in place, or as many inserts as deletes
// between two polls) is seen at the first poll after the bucket changed:
// within ExternalEditBound plus the polling interval. The same bound holds
// for a regctl change whose marker update failed (the server went away
// just after the write; the change itself is not undone). The price is
// that the value also moves once per bucket when nothing changed, so a
// poller lists and compiles the rules once per ExternalEditBound anyway.
//
// Errors are those of the other methods: an unreachable server or a
// passed deadline wraps store.ErrUnavailable.
func (s *Store) RulesVersion(ctx context.Context) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	const op = "read rules version"
	marker, err := s.meta.FindOne(ctx, bson.D{{Key: "_id", Value: metaRulesID}}).Raw()
	switch {
	case errors.Is(err, mongodrv.ErrNoDocuments):
		marker = nil // no change through regctl yet
	case err != nil:
		return 0, s.wrapErr(op, err)
	}
	n, err := s.countRules(ctx)
	if err != nil {
		return 0, s.wrapErr(op, err)
	}
	return rulesVersion(marker, n, s.versionNow().Add(s.bucketPhase)), nil
}

// countRules returns the number of documents in the acl collection, 0 if
// there is none, from $collStats. MongoDB answers it from collection
// metadata, as it does the count command without a filter; FerretDB counts
// the cells of the SQLite table's leaf pages, which is exact and decodes no
// document, while its count command decodes every document (nearly what
// listing them costs). A sharded collection
// gives one result per shard.
func (s *Store) countRules(ctx context.Context) (int64, error) {
	pipeline := bson.A{bson.D{{Key: "$collStats", Value: bson.D{{Key: "count", Value: bson.D{}}}}}}
	cur, err := s.rules.Aggregate(ctx, pipeline)
	if hasCode(err, codeNamespaceNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var shards []struct {
		Count int64 `bson:"count"`
	}
	if err := cur.All(ctx, &shards); err != nil {
		return 0, err
	}
	var n int64
	for _, sh := range shards {
		n += sh.Count
	}
	return n, nil
}

// rulesVersion hashes RulesVersion's parts: the marker document as stored
// (any change to it counts, whatever type its version has), the count and
// the time bucket of now.
func rulesVersion(marker bson.Raw, count int64, now time.Time) int64 {
	h := fnv.New64a()
	var b [8]byte
	for _, v := range []int64{int64(len(marker)), count, timeBucket(now)} {
		binary.BigEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	h.Write(marker)
	return int64(h.Sum64())
}

// timeBucket numbers the ExternalEditBound-long interval holding t.
func timeBucket(t time.Time) int64 {
	ms, bound := t.UnixMilli(), ExternalEditBound.Milliseconds()
	q := ms / bound
	if ms%bound < 0 {
		q-- // floor, for times before 1970
	}
	return q
}

// bumpRules replaces the change marker after a rule change (see
// RulesVersion). It runs even when ctx has ended, since the change is
// written, and gets the store's timeout. A failure is not reported: the
// change happened, and RulesVersion still reflects it within
// ExternalEditBound, as it does a change by another program.
func (s *Store) bumpRules(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	for range 2 {
		_, err := s.meta.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: metaRulesID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: fVersion, Value: int64(rand.Uint64())}}}},
			options.UpdateOne().SetUpsert(true))
		// Two first upserts can race to insert the document; the loser
		// gets a duplicate key error and updates the winner's.
		if !mongodrv.IsDuplicateKeyError(err) {
			return
		}
	}
}
