package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/storetest"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the helper process of process_test.go.
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	code := m.Run()
	removeFixtures()
	os.Exit(code)
}

// openTest opens a store on a fresh file and closes it at cleanup.
func openTest(t *testing.T, opts ...Option) *Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "regctl.db"), opts...)
}

// openPath opens a store on path and closes it at cleanup.
func openPath(t *testing.T, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(testCtx(t), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

// TestUnavailableClosed: after Close, every method fails closed, at once,
// with a one-line error wrapping store.ErrUnavailable.
func TestUnavailableClosed(t *testing.T) {
	var s *Store
	open := func(t *testing.T) store.Store {
		s = openTest(t, WithTimeout(time.Second))
		return s
	}
	stop := func(t *testing.T) {
		if err := s.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	storetest.RunUnavailable(t, open, stop, 2*time.Second)
}

// TestAttemptLogConformance: two handles on one file, as two token
// servers on one host have.
func TestAttemptLogConformance(t *testing.T) {
	storetest.RunAttemptLog(t, func(t *testing.T) (store.AttemptLog, store.AttemptLog) {
		path := filepath.Join(t.TempDir(), "regctl.db")
		return openPath(t, path), openPath(t, path)
	})
}
