//go:build integration

package mongo

import (
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store/storetest"
	"github.com/regctl/regctl/internal/testenv"
)

// TestRulesVersionOtherPrograms: RulesVersion, read through another handle
// (another regctl process), moves after a change through the store; after
// an insert or a delete by another program at once (the count); after an
// edit in place by another program when the time bucket turns, and not
// before; and never while nothing changes.
func TestRulesVersionOtherPrograms(t *testing.T) {
	uri, db := testURI(t), uniqueDB()
	// One second into a bucket, so advancing by a bucket turns exactly one.
	clock := testenv.NewClock(time.UnixMilli(0).Add(1000*ExternalEditBound + time.Second))
	s := openDB(t, uri, db, WithClock(clock.Now), WithTimeout(20*time.Second))
	poller := openDB(t, uri, db, WithClock(clock.Now), WithTimeout(20*time.Second))
	poller.bucketPhase = 0
	acls := rawClient(t).Database(db).Collection(DefaultRulesCollection)
	ctx := testCtx(t)

	check := storetest.VersionCheck(t, func() (int64, error) { return poller.RulesVersion(ctx) })
	check("nothing", false)

	if err := s.AddRule(ctx, acl.Rule{Seq: 1, Actions: []string{"pull"}}); err != nil {
		t.Fatal(err)
	}
	check("AddRule through another handle", true)
	if err := s.ReplaceRules(ctx, []acl.Rule{{Seq: 2, Actions: []string{}}}); err != nil {
		t.Fatal(err)
	}
	check("ReplaceRules by as many rules through another handle", true)
	if err := s.AddRule(ctx, acl.Rule{Seq: 5, Actions: []string{"pull"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRule(ctx, 2); err != nil {
		t.Fatal(err)
	}
	check("an AddRule and a RemoveRule (as many rules as before)", true)

	if _, err := acls.InsertOne(ctx, bson.D{
		{Key: "seq", Value: int64(3)}, {Key: "match", Value: bson.D{}}, {Key: "actions", Value: bson.A{"pull"}},
	}); err != nil {
		t.Fatal(err)
	}
	check("an insert by another program", true)

	if _, err := acls.UpdateOne(ctx, bson.D{{Key: "seq", Value: int64(3)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "actions", Value: bson.A{"pull", "push"}}}}}); err != nil {
		t.Fatal(err)
	}
	// The documented limit: an edit in place is seen when the bucket turns.
	check("an edit in place by another program, same time bucket", false)
	clock.Advance(ExternalEditBound - 2*time.Second)
	check("an edit in place by another program, end of the time bucket", false)
	clock.Advance(time.Second)
	check("an edit in place by another program, next time bucket", true)
	clock.Advance(ExternalEditBound - time.Second)
	check("nothing, same time bucket", false)

	if _, err := acls.DeleteOne(ctx, bson.D{{Key: "seq", Value: int64(3)}}); err != nil {
		t.Fatal(err)
	}
	check("a delete by another program", true)
	if err := poller.RemoveRule(ctx, 5); err != nil {
		t.Fatal(err)
	}
	check("RemoveRule (the last rule)", true)
	if err := acls.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	check("dropping an empty acl collection", false)
	if _, err := poller.meta.DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	check("deleting the change marker", true)
	if err := s.AddRule(ctx, acl.Rule{Seq: 4, Actions: []string{"pull"}}); err != nil {
		t.Fatal(err)
	}
	check("AddRule recreating both collections", true)
}

// TestRulesVersionConcurrentWriters: rule changes racing each other from
// two handles all succeed, and the version read before them moves.
func TestRulesVersionConcurrentWriters(t *testing.T) {
	uri, db := testURI(t), uniqueDB()
	pinned := time.Now()
	a := openDB(t, uri, db, WithTimeout(20*time.Second))
	b := openDB(t, uri, db, WithTimeout(20*time.Second))
	for _, s := range []*Store{a, b} {
		s.versionNow = func() time.Time { return pinned }
	}
	ctx := testCtx(t)
	before, err := a.RulesVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			for j := range 10 {
				if err := s.AddRule(ctx, acl.Rule{Seq: int64(100*i + j), Actions: []string{"pull"}}); err != nil {
					t.Errorf("AddRule: %v", err)
				}
			}
		})
	}
	wg.Wait()
	after, err := b.RulesVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Errorf("RulesVersion unchanged after 20 concurrent AddRules")
	}
	var marker bson.M
	if err := a.meta.FindOne(ctx, bson.D{{Key: "_id", Value: metaRulesID}}).Decode(&marker); err != nil {
		t.Fatalf("change marker: %v", err)
	}
	if len(marker) != 2 {
		t.Errorf("change marker %v, want only _id and version", marker)
	}
}

// TestRulesVersionMarker: each kind of rule change through the store
// replaces the change marker (AddRule and RemoveRule also change the count,
// which would hide a missing update from RulesVersion), and a failed one
// does not.
func TestRulesVersionMarker(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	var last string
	check := func(what string, changed bool) {
		t.Helper()
		raw, err := s.meta.FindOne(ctx, bson.D{{Key: "_id", Value: metaRulesID}}).Raw()
		if err != nil {
			t.Fatalf("after %s, change marker: %v", what, err)
		}
		if m := raw.String(); (m != last) != changed {
			t.Errorf("after %s, change marker %s, was %s; want changed = %v", what, m, last, changed)
		} else {
			last = m
		}
	}
	rule := acl.Rule{Seq: 1, Actions: []string{"pull"}}
	if err := s.AddRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	check("AddRule", true)
	_ = s.AddRule(ctx, rule)
	check("a failed AddRule", false)
	if err := s.RemoveRule(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("RemoveRule", true)
	_ = s.RemoveRule(ctx, 1)
	check("a failed RemoveRule", false)
	if err := s.ReplaceRules(ctx, []acl.Rule{rule}); err != nil {
		t.Fatal(err)
	}
	check("ReplaceRules", true)
	_ = s.ReplaceRules(ctx, []acl.Rule{rule, rule})
	check("a failed ReplaceRules", false)
}
