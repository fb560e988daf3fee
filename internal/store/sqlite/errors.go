package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/storeerr"
)

// fnError carries an error returned by UpdateUser's fn out of the
// transaction, so that it is returned unchanged.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }
func (e fnError) Unwrap() error { return e.err }

// lockWaitError marks an error that ended the wait for the write lock.
type lockWaitError struct{ error }

func (e lockWaitError) Unwrap() error { return e.error }

// errClosed is the cause of every error after Close.
var errClosed = errors.New("database is closed")

// decodeError is an error in a stored row; wrapErr passes it through
// with the operation as prefix.
type decodeError struct{ error }

func (e decodeError) Unwrap() error { return e.error }

// wrapErr maps an error of operation op to the store's errors:
//   - an error of UpdateUser's fn is returned unchanged;
//   - errors the store made itself (ErrNotFound, ErrExists, ErrInvalid,
//     ErrConflict, decoding errors) get op as prefix;
//   - a canceled ctx gives an error wrapping context.Canceled;
//   - a deadline, a closed store and the SQLite errors that mean the
//     database cannot be used (locked for too long, unreadable, not a
//     database, I/O error, full disk) wrap store.ErrUnavailable (and the
//     cause) and name the file;
//   - any other SQLite error names the file.
//
// ctx is the operation's context, or nil.
func (s *Store) wrapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if fe, ok := errors.AsType[fnError](err); ok {
		return fe.err
	}
	if _, ok := errors.AsType[decodeError](err); ok || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var cerr error
	if ctx != nil {
		cerr = ctx.Err()
	}
	if errors.Is(cerr, context.Canceled) || cerr == nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, context.Canceled)
	}
	se, isSQLite := errors.AsType[*sqlitedrv.Error](err)
	switch {
	case s.closed.Load() || errors.Is(err, errClosed) || errors.Is(err, sql.ErrConnDone) ||
		strings.Contains(err.Error(), "sql: database is closed"):
		return s.unavailable(op, errClosed.Error(), errClosed)
	case errors.Is(cerr, context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		cause := "deadline exceeded"
		if _, ok := errors.AsType[lockWaitError](err); ok || isBusy(err) {
			cause = "deadline exceeded waiting for the write lock (another writer holds the database locked)"
		}
		return s.unavailable(op, cause, context.DeadlineExceeded, err)
	case isSQLite && unavailableCode(se.Code()):
		msg := storeerr.OneLine(err.Error())
		if hint := hintFor(se.Code()); hint != "" {
			msg += " (" + hint + ")"
		}
		return s.unavailable(op, msg, err)
	case isSQLite:
		return storeerr.New(fmt.Sprintf("%s: %s", s.withPath(op), storeerr.OneLine(err.Error())), err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// withPath returns op naming the database file, unless it does already.
func (s *Store) withPath(op string) string {
	if strings.Contains(op, s.path) {
		return op
	}
	return op + " (" + s.path + ")"
}

// unavailable returns a one-line error of op wrapping store.ErrUnavailable
// and causes.
func (s *Store) unavailable(op, msg string, causes ...error) error {
	return storeerr.Unavailable(s.withPath(op), msg, causes...)
}

// unavailableCode reports whether a SQLite result code means the database
// cannot be used at the moment, as opposed to a bad statement or value.
func unavailableCode(code int) bool {
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
		sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT,
		sqlite3.SQLITE_AUTH, sqlite3.SQLITE_NOLFS:
		return true
	}
	return false
}

// hintFor returns what an operator can do about an error code, or "".
func hintFor(code int) string {
	switch code {
	case sqlite3.SQLITE_READONLY_DIRECTORY:
		return "the directory is not writable: SQLite keeps the -wal and -shm files there"
	case sqlite3.SQLITE_READONLY_CANTINIT:
		return "cannot set up the -shm file: it and its directory must be writable"
	case sqlite3.SQLITE_READONLY_DBMOVED:
		return "the file was moved or deleted while open"
	}
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return "another process holds the database locked"
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM:
		return "the file and its directory must be writable"
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return "not a SQLite database, or damaged"
	}
	return ""
}

// isBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED: another
// connection holds a lock the operation needs.
func isBusy(err error) bool {
	se, ok := errors.AsType[*sqlitedrv.Error](err)
	if !ok {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}
