package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCache holds the prepared statements of one pool, prepared on first
// use: preparing a statement costs more than running most of regctl's.
// database/sql prepares a statement again on each connection it runs on.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt)}
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

// close closes the statements; the pool's Close follows.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// errRow is a scanner whose Scan returns err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queryRow runs a one-row query on the reader pool.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) scanner {
	st, err := s.readStmts.get(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a query on the reader pool.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmts.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// lookup returns the statement for query if it is prepared.
func (c *stmtCache) lookup(query string) (*sql.Stmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[query]
	return st, ok
}

// Statements the writer's transactions run; Open prepares them.
const (
	qInsertUser = "INSERT INTO users (" + userColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (username) DO NOTHING"
	qUpdateUser = `UPDATE users SET password_hash = ?, labels = ?, grants = ?, expires_at = ?, disabled = ?,
	created_at = ?, updated_at = ?, rev = rev + 1 WHERE username = ? AND rev = ?`
	qDeleteUser  = "DELETE FROM users WHERE username = ?"
	qInsertRule  = "INSERT INTO rules (seq, match, actions, comment, expires_at) VALUES (?, ?, ?, ?, ?)"
	qAddRule     = qInsertRule + " ON CONFLICT (seq) DO NOTHING"
	qDeleteRule  = "DELETE FROM rules WHERE seq = ?"
	qDeleteRules = "DELETE FROM rules"
)

var writeQueries = []string{qSelectUser, qInsertUser, qUpdateUser, qDeleteUser, qInsertRule, qAddRule, qDeleteRule, qDeleteRules,
	qAddAttempt, qCountAttempts, qPruneAttempts, qRemoveAttempt, qRemoveAttempts2}

// prepareWrites prepares writeQueries on the writer. It must run outside
// any transaction: preparing needs the writer's only connection.
func (s *Store) prepareWrites(ctx context.Context) error {
	for _, q := range writeQueries {
		if _, err := s.writeStmts.get(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// txStmt returns the writer's prepared statement for query bound to tx,
// or, for a query that was not prepared in advance, a statement prepared
// in tx (and closed with it).
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := s.writeStmts.lookup(query); ok {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, query)
}

// txExec runs a statement in tx.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.txStmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// txExecOne runs query in tx like txExec and returns none when it changed
// no row.
func (s *Store) txExecOne(ctx context.Context, tx *sql.Tx, none error, query string, args ...any) error {
	res, err := s.txExec(ctx, tx, query, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return none
	}
	return nil
}

// txQueryRow runs a one-row query in tx.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) scanner {
	st, err := s.txStmt(ctx, tx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}
