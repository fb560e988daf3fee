//go:build integration

package store_test

import (
	"context"
	"testing"

	"github.com/regctl/regctl/internal/store/mongo"
	"github.com/regctl/regctl/internal/testenv"
)

// SQLite → MongoDB, the path from the single-host default to a replica set.
func TestMigrateSQLiteToMongo(t *testing.T) {
	base := testenv.Require(t, testenv.EnvMongoURI, "a mongodb:// URI of FerretDB v1.24.2 or MongoDB ≥ 5")
	uri := testenv.MongoURI(t, base, testenv.UniqueName("migrate"))
	dst, err := mongo.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close(context.Background()) })
	testMigrate(t, dst)
}
