package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// CheckIndexes reports the unique indexes regctl relies on (users.username,
// acl.seq and the lock collection's key, which Open creates) that are
// missing or not unique, for `regctl doctor`.
func (s *Store) CheckIndexes(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var missing []string
	for _, ix := range []struct{ coll, field string }{
		{s.users.Name(), fUsername},
		{s.rules.Name(), fSeq},
		{s.locks.Name(), fKey},
	} {
		ok, err := hasUniqueIndex(ctx, s.db.Collection(ix.coll), ix.field)
		if err != nil {
			return s.wrapErr("list indexes of "+ix.coll, err)
		}
		if !ok {
			missing = append(missing, ix.coll+"."+ix.field)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no unique index on %s", strings.Join(missing, ", "))
	}
	return nil
}

// ServerTime returns the server's clock (the hello command's localTime),
// for `regctl doctor`'s clock skew check.
func (s *Store) ServerTime(ctx context.Context) (time.Time, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var res struct {
		LocalTime time.Time `bson:"localTime"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&res); err != nil {
		return time.Time{}, s.wrapErr("hello", err)
	}
	if res.LocalTime.IsZero() {
		return time.Time{}, errors.New("the server's hello reply has no localTime")
	}
	return res.LocalTime, nil
}
