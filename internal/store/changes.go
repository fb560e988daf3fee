package store

import (
	"context"

	"github.com/regctl/regctl/internal/acl"
)

// RuleCursor says how far a reader has read a store's rule history: the
// zero value has read nothing.
type RuleCursor struct {
	// Epoch identifies the history (for SQLite, the database file's: a
	// restored backup or another file has another). A cursor from another
	// epoch reads everything anew.
	Epoch int64
	// Version is the last change read.
	Version int64
}

// RuleChanges is what changed in the rule set since a cursor.
type RuleChanges struct {
	// Cursor is where the next call should start.
	Cursor RuleCursor
	// Full says Rules is the whole rule set (and Removed is empty): the
	// cursor was the zero value, from another epoch or ahead of the store.
	Full bool
	// Rules are the rules added or changed since the cursor, or every rule
	// when Full, sorted by Seq.
	Rules []acl.Rule
	// Removed are the seqs of the rules removed since the cursor (and not
	// added again), sorted.
	Removed []int64
}

// Unchanged reports whether nothing changed since since.
func (c *RuleChanges) Unchanged(since RuleCursor) bool {
	return !c.Full && c.Cursor == since && len(c.Rules) == 0 && len(c.Removed) == 0
}

// RuleChangeSource is implemented by a backend that can list only the
// rules changed since a cursor, however they were changed (through the
// backend, another process, or by hand). The token server then reloads
// with one cheap query when nothing changed and reads and compiles only
// the changed rules when something did. Its errors follow the Store's.
type RuleChangeSource interface {
	RuleChangesSince(ctx context.Context, since RuleCursor) (RuleChanges, error)
}
