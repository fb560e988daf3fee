// Package sqlite is the embedded SQLite backend of store.Store, regctl's
// zero-setup default. It uses modernc.org/sqlite (pure Go, no cgo).
//
// The database is one file plus SQLite's "-wal" and "-shm" companions in
// the same directory. Several processes may use it at once (the admin CLI
// on the host and "regctl serve" in a container, say, with the directory
// bind-mounted): the file is in WAL mode, so readers never wait; every
// write is a BEGIN IMMEDIATE transaction, and a writer that finds the
// database locked by another waits for up to the store's timeout before
// failing with store.ErrUnavailable. Within a process, writes are
// serialized on one connection and reads use a small pool.
//
// WAL mode shares memory (the -shm file, mapped) between the processes,
// so they must run on the same kernel: a Linux host and its containers
// are fine, but not a network file system, nor a macOS or Windows host
// sharing the directory with a Docker Desktop VM (there, run the CLI
// inside the container). Every process needs read and write access to
// the file and to its directory.
//
// The schema is versioned: Open applies pending migrations, each in one
// transaction recorded in the table schema_migrations, and refuses a
// database whose schema is newer than the binary.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/regctl/regctl/internal/store"
)

// DefaultTimeout bounds every operation, including the wait for a lock
// another process holds, so a stuck database fails fast.
const DefaultTimeout = 5 * time.Second

// Store is a store.Store on a SQLite database file. It is safe for
// concurrent use by goroutines and by processes.
type Store struct {
	path   string  // absolute path of the database file
	writer *sql.DB // one connection: writes are serialized in-process
	reader *sql.DB // several connections, read-only

	writeStmts, readStmts *stmtCache
	timeout               time.Duration
	now                   func() time.Time
	closed                atomic.Bool
}

var _ store.Store = (*Store)(nil)

type config struct {
	timeout time.Duration
	now     func() time.Time
}

// Option configures Open.
type Option func(*config)

// WithTimeout overrides DefaultTimeout: the bound of each operation and of
// the wait for a lock held by another process (SQLite's busy timeout).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithClock sets the clock used for CreatedAt and UpdatedAt (time.Now by
// default).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Open opens the SQLite database at path, creating it (mode 0600, with any
// missing parent directories, mode 0700) if it does not exist, and
// migrates its schema to the current version. ctx bounds Open itself. A
// file that cannot be opened for reading and writing, is not a SQLite
// database, or stays locked by another process gives an error wrapping
// store.ErrUnavailable; one whose schema is newer than this binary
// supports, or that holds another application's tables, an error that
// does not. Every error names the file.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{timeout: DefaultTimeout, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.timeout <= 0 {
		return nil, errors.New("open sqlite store: timeout must be positive")
	}
	if path == "" {
		return nil, errors.New("open sqlite store: database path is empty")
	}
	if path == ":memory:" {
		return nil, errors.New(`open sqlite store ":memory:": in-memory databases are not supported: give a file path`)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, err
	}

	s := &Store{path: abs, timeout: cfg.timeout, now: cfg.now}
	busyMS := strconv.FormatInt(max(cfg.timeout.Milliseconds(), 1), 10)
	base := (&url.URL{Scheme: "file", Path: abs}).String() +
		"?_busy_timeout=" + busyMS + "&_foreign_keys=on&_synchronous=NORMAL"
	if s.writer, err = sql.Open("sqlite", base+"&_journal_mode=WAL&_txlock=immediate"); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	if s.reader, err = sql.Open("sqlite", base+"&_query_only=on"); err != nil {
		_ = s.writer.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	s.writeStmts, s.readStmts = newStmtCache(s.writer), newStmtCache(s.reader)
	n := min(max(runtime.GOMAXPROCS(0), 2), 8)
	s.reader.SetMaxOpenConns(n)
	s.reader.SetMaxIdleConns(n)
	s.reader.SetConnMaxLifetime(0)
	s.reader.SetConnMaxIdleTime(0)

	// Every writer connection asks for WAL mode; the first one on a new
	// file, in migrate, switches it. Readers follow the file's mode.
	if err := s.migrate(ctx); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	if err := s.prepareWrites(ctx); err != nil {
		_ = s.Close(ctx)
		return nil, s.wrapErr(ctx, "open sqlite store "+abs, err)
	}
	return s, nil
}

// prepareFile creates the database file and its missing parent directories
// with private modes, and checks that the file can be read and written, so
// that a permission problem is reported as such rather than as SQLite's
// "unable to open database file" or, worse, a database SQLite silently
// opened read-only.
func prepareFile(path string) error {
	fail := func(what string, err error) error {
		// Keep the *PathError's cause (EACCES, EROFS, ...) for errors.Is
		// but not its message, which repeats the path.
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			err = pe.Err
		}
		return fmt.Errorf("open sqlite store %s: %w: %s: %w", path, store.ErrUnavailable, what, err)
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("open sqlite store %s: not a regular file", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail("create directory "+dir, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fail("cannot open the file for reading and writing", err)
	}
	return f.Close()
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// opContext bounds one operation by the store's timeout.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// nowMS is the store's clock truncated to the stored precision.
func (s *Store) nowMS() time.Time { return store.Truncate(s.now()) }

// Ping checks that the database file can be read.
func (s *Store) Ping(ctx context.Context) error {
	const op = "ping sqlite"
	return s.read(ctx, op, func(ctx context.Context) error {
		var n int
		// Reading the schema reads the file, which PingContext does not.
		return s.queryRow(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
	})
}

// Close closes the database; the Store is unusable afterwards and its
// methods return errors wrapping store.ErrUnavailable. Closing twice is a
// no-op.
func (s *Store) Close(_ context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	// Readers first: the writer's connection, closed last, checkpoints
	// the WAL into the database file and removes it.
	err := errors.Join(s.readStmts.close(), s.writeStmts.close(), s.reader.Close(), s.writer.Close())
	if err != nil {
		return fmt.Errorf("close sqlite store %s: %w", s.path, err)
	}
	return nil
}

// read runs a read-only operation with the store's timeout, retrying it
// while another connection holds a lock it needs.
func (s *Store) read(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if s.closed.Load() {
		return s.wrapErr(ctx, op, errClosed)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	return s.wrapErr(ctx, op, retryBusy(ctx, func() error { return fn(ctx) }))
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) with the store's
// timeout and commits it if fn returns nil. When another connection holds
// the database locked beyond SQLite's own busy wait, the whole
// transaction, fn included, is retried until the timeout.
func (s *Store) write(ctx context.Context, op string, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.closed.Load() {
		return s.wrapErr(ctx, op, errClosed)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	return s.wrapErr(ctx, op, retryBusy(ctx, func() error { return s.writeOnce(ctx, fn) }))
}

func (s *Store) writeOnce(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// Waiting for the writer connection (held by another
			// goroutine) or for SQLite's write lock (held by another
			// process) took all the time there was.
			err = lockWaitError{err}
		}
		return err
	}
	// Roll back on every way out but a commit, a panic in fn included:
	// a transaction left open would hold the only writer connection.
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	committed = true
	return tx.Commit()
}

// retryBusy calls fn until it returns anything but SQLITE_BUSY or
// SQLITE_LOCKED, or ctx is done. SQLite waits for a lock itself (the busy
// timeout), but returns SQLITE_BUSY at once in a few cases, such as while
// another connection recovers the WAL.
func retryBusy(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if !isBusy(err) || ctx.Err() != nil {
			return err
		}
		d := min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)
		t := time.NewTimer(d/2 + rand.N(d/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
