//go:build integration

package cmdtest

import (
	"context"
	"testing"
	"time"

	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/mongo"
	"github.com/regctl/regctl/internal/testenv"
)

// With -tags integration every run test (every command, every golden
// transcript) also runs against FerretDB, each test in its own database.
func init() {
	Backends = append(Backends, Backend{Name: "ferretdb", Open: openFerretDB})
}

// MongoWhat names what EnvMongoURI must point at.
const MongoWhat = "the mongodb:// URI of a running FerretDB v1.24.2 (or MongoDB >= 5), e.g. mongodb://127.0.0.1:27017/"

func openFerretDB(t *testing.T, now func() time.Time) store.Store {
	t.Helper()
	base := testenv.Require(t, testenv.EnvMongoURI, MongoWhat)
	db := testenv.UniqueName("regctl_cli")
	uri := testenv.MongoURI(t, base, db)
	ctx := Ctx(t)
	st, err := mongo.Open(ctx, uri, mongo.WithClock(now))
	if err != nil {
		t.Fatalf("open %s: %v", db, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.Close(ctx)
		DropDatabase(t, base, db)
	})
	return st
}

// DropDatabase drops db, logging a failure.
func DropDatabase(t *testing.T, uri, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongodrv.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop %s: %v", db, err)
		return
	}
	defer client.Disconnect(ctx)
	if err := client.Database(db).Drop(ctx); err != nil {
		t.Logf("drop %s: %v", db, err)
	}
}
