package store

import (
	"context"
	"time"
)

// AttemptLog is an optional capability of a backend: a log of login
// attempts kept in the store, through which every token server on one
// store holds the brute-force limits together (package token's
// sharedLimits). Each record is an attempt under a key (a client
// address or an account, as the token server names them), valid until
// it expires.
//
// Records are inserted, never updated in place: an insert is atomic on
// every backend, FerretDB included, where a counter updated with $inc is
// not (concurrent increments are lost). Counting the records makes the
// count exact however many servers add at once.
//
// Keys are stored as values, never as document keys or field names, so
// any string is a valid key. Errors follow Store's rules: an unreachable
// store or a passed deadline wraps ErrUnavailable.
type AttemptLog interface {
	// AddAttempts records one attempt per element of attempts (whose
	// keys are distinct) and returns their IDs and, for each, the number
	// of records under its key that have not expired at now, itself
	// included. Counts are consistent under concurrency, from any number
	// of processes: of n adds under one key, however they interleave,
	// the i-th to complete its insert counts at least i. So when
	// callers admit an attempt only if its count is at most N, at most N
	// of any concurrent attempts are admitted.
	AddAttempts(ctx context.Context, now time.Time, attempts []Attempt) (ids []string, counts []int, err error)
	// RemoveAttempts deletes the records with these IDs; unknown IDs
	// (already pruned) are ignored.
	RemoveAttempts(ctx context.Context, ids []string) error
	// PruneAttempts deletes every record expired at now. Expired records
	// are never counted; pruning only keeps the log small.
	PruneAttempts(ctx context.Context, now time.Time) error
}

// Attempt is one login attempt to record: its key and the instant it
// stops counting (stored at TimePrecision), which must be after the now
// it is added at.
type Attempt struct {
	Key       string
	ExpiresAt time.Time
}
