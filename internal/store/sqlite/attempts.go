package sqlite

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/store"
)

var _ store.AttemptLog = (*Store)(nil)

const (
	qAddAttempt    = "INSERT INTO login_attempts (key, expires_at) VALUES (?, ?) RETURNING id"
	qCountAttempts = "SELECT count(*) FROM login_attempts WHERE key = ? AND expires_at > ?"
	qPruneAttempts = "DELETE FROM login_attempts WHERE expires_at <= ?"
	// The IN lists RemoveAttempts builds for one and two IDs, the token
	// server's usual calls: prepared in advance like the others.
	qRemoveAttempt   = "DELETE FROM login_attempts WHERE id IN (?)"
	qRemoveAttempts2 = "DELETE FROM login_attempts WHERE id IN (?, ?)"
)

// AddAttempts inserts the records and counts them in one write
// transaction: writers are serialized (BEGIN IMMEDIATE, across processes
// too), so each count sees every record added before it.
func (s *Store) AddAttempts(ctx context.Context, now time.Time, attempts []store.Attempt) ([]string, []int, error) {
	const op = "add login attempts"
	ids := make([]string, len(attempts))
	counts := make([]int, len(attempts))
	nowMS := store.Truncate(now).UnixMilli()
	err := s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		for i, a := range attempts {
			var id int64
			if err := s.txQueryRow(ctx, tx, qAddAttempt, a.Key, store.Truncate(a.ExpiresAt).UnixMilli()).Scan(&id); err != nil {
				return err
			}
			ids[i] = strconv.FormatInt(id, 10)
		}
		for i, a := range attempts {
			if err := s.txQueryRow(ctx, tx, qCountAttempts, a.Key, nowMS).Scan(&counts[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return ids, counts, nil
}

// RemoveAttempts deletes records by ID in one statement.
func (s *Store) RemoveAttempts(ctx context.Context, ids []string) error {
	const op = "remove login attempts"
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids))
	for _, id := range ids {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			continue // not one of ours: unknown
		}
		args = append(args, n)
	}
	if len(args) == 0 {
		return nil
	}
	q := "DELETE FROM login_attempts WHERE id IN (?" + strings.Repeat(", ?", len(args)-1) + ")"
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, q, args...)
		return err
	})
}

// PruneAttempts deletes the expired records.
func (s *Store) PruneAttempts(ctx context.Context, now time.Time) error {
	const op = "prune login attempts"
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, qPruneAttempts, store.Truncate(now).UnixMilli())
		return err
	})
}
