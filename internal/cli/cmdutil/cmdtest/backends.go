package cmdtest

import (
	"testing"
	"time"

	"github.com/regctl/regctl/internal/store"
)

// Backend opens a fresh, empty store whose clock (CreatedAt, UpdatedAt)
// is now; it registers its own cleanup.
type Backend struct {
	Name string
	Open func(t *testing.T, now func() time.Time) store.Store
}

// Backends are the real stores every run test uses: SQLite always,
// FerretDB with -tags integration (ferretdb.go adds it).
var Backends = []Backend{{Name: "sqlite", Open: OpenSQLite}}

// ForEachBackend runs fn once per backend, each with a fresh store in a
// new environment that newEnv builds (NewEnv(t, nil) when nil).
func ForEachBackend[E any](t *testing.T, newEnv func(t *testing.T) (E, *Env), fn func(t *testing.T, e E)) {
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) {
			e, c := newEnv(t)
			c.St = b.Open(t, c.Now)
			fn(t, e)
		})
	}
}
