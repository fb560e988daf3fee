package mongo

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// These tests need no server.

func TestTimeBucket(t *testing.T) {
	start := time.UnixMilli(0).Add(7 * ExternalEditBound)
	for _, tt := range []struct {
		t    time.Time
		want int64
	}{
		{start, 7},
		{start.Add(ExternalEditBound - time.Millisecond), 7},
		{start.Add(ExternalEditBound), 8},
		{start.Add(-time.Millisecond), 6},
		{time.UnixMilli(0), 0},
		{time.UnixMilli(-1), -1},
		{time.UnixMilli(0).Add(-ExternalEditBound), -1},
	} {
		if got := timeBucket(tt.t); got != tt.want {
			t.Errorf("timeBucket(%v) = %d, want %d", tt.t.UTC(), got, tt.want)
		}
	}
}

func TestRulesVersionParts(t *testing.T) {
	now := time.Now()
	marker := marshal(t, bson.D{{Key: "_id", Value: metaRulesID}, {Key: fVersion, Value: int64(42)}})
	other := marshal(t, bson.D{{Key: "_id", Value: metaRulesID}, {Key: fVersion, Value: int64(43)}})
	v := rulesVersion(marker, 10, now)
	if again := rulesVersion(marker, 10, now); again != v {
		t.Errorf("same parts, versions %d and %d", v, again)
	}
	for what, w := range map[string]int64{
		"another marker":   rulesVersion(other, 10, now),
		"no marker":        rulesVersion(nil, 10, now),
		"another count":    rulesVersion(marker, 11, now),
		"next time bucket": rulesVersion(marker, 10, now.Add(ExternalEditBound)),
	} {
		if w == v {
			t.Errorf("%s: version unchanged", what)
		}
	}
}

func TestOpenCollectionNames(t *testing.T) {
	for _, opts := range [][]Option{
		{WithMetaCollection("")},
		{WithMetaCollection(DefaultLocksCollection)},
		{WithMetaCollection(DefaultRulesCollection)},
		{WithLocksCollection("x"), WithMetaCollection("x")},
	} {
		// The names are checked before connecting: no server needed.
		_, err := Open(context.Background(), "mongodb://127.0.0.1:1/", opts...)
		if err == nil || !strings.Contains(err.Error(), "must be distinct and non-empty") {
			t.Errorf("Open with clashing collection names: %v", err)
		}
	}
}
