// Package store defines regctl's persistent model (users with labels,
// grants and expiry; docker_auth ACL rules) and the contract every backend
// (MongoDB, SQLite) satisfies. Backends live in sub-packages.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/regctl/regctl/internal/acl"
)

var (
	// ErrNotFound means the user or rule does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a user with that name or a rule with that seq exists.
	ErrExists = errors.New("already exists")
	// ErrUnavailable wraps every error that means the store could not be
	// reached or did not answer in time. Callers fail closed on it.
	ErrUnavailable = errors.New("store unavailable")
	// ErrConflict means a concurrent writer changed the record; UpdateUser
	// retries a few times before returning it, so under heavy contention
	// callers may still see it and should retry or report it.
	ErrConflict = errors.New("concurrent update")
)

// User is one account. The first three fields are docker_auth's document;
// the rest are regctl's and are absent from plain docker_auth documents.
type User struct {
	Username     string              `json:"username" yaml:"username"`
	PasswordHash string              `json:"-" yaml:"-"` // bcrypt $2a$/$2b$/$2y$
	Labels       map[string][]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Grants       []acl.Grant         `json:"grants,omitempty" yaml:"grants,omitempty"`
	ExpiresAt    *time.Time          `json:"expires_at,omitempty" yaml:"expires_at,omitempty"`
	Disabled     bool                `json:"disabled" yaml:"disabled"`
	CreatedAt    time.Time           `json:"created_at,omitzero" yaml:"created_at,omitempty"`
	UpdatedAt    time.Time           `json:"updated_at,omitzero" yaml:"updated_at,omitempty"`
}

// Status is a user's effective state at a point in time.
type Status string

// The states Status reports.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
	StatusExpired  Status = "expired"
)

// Status reports whether u may authenticate at now. Expiry is exclusive:
// at the instant ExpiresAt the account is already expired.
func (u *User) Status(now time.Time) Status {
	switch {
	case u.Disabled:
		return StatusDisabled
	case acl.Expired(u.ExpiresAt, now):
		return StatusExpired
	}
	return StatusActive
}

// Store is the contract of every backend. Methods honour ctx; connection
// failures and passed deadlines are returned wrapped in ErrUnavailable
// (context.Canceled is not). Records that cannot be stored (a label key with
// '.' or a leading '$') give ErrInvalid. Times are stored at TimePrecision.
// All methods are safe for concurrent use.
//
// A backend may also have RulesVersion(ctx) (int64, error): a value, cheap
// to read, that changes when the rule set changes (compare it for equality
// only; it need not increase). Every change made through the backend's
// methods moves it and no other call does, though it may also move as time
// passes; how soon changes made by other programs show is the backend's to
// document. Its errors follow the rules above. The token server polls it
// and lists the rules only when it moved; the conformance suite checks it.
type Store interface {
	// GetUser returns ErrNotFound for an unknown name.
	GetUser(ctx context.Context, username string) (*User, error)
	// ListUsers returns all users sorted by username.
	ListUsers(ctx context.Context) ([]User, error)
	// CreateUser returns ErrExists if the name is taken. It sets CreatedAt
	// and UpdatedAt when they are zero.
	CreateUser(ctx context.Context, u *User) error
	// UpdateUser loads the user, calls fn on it and writes it back only if
	// nobody changed it meanwhile (retrying fn on conflict, so fn may run
	// more than once and must have no side effects). Changing the username
	// is ErrInvalid. It sets UpdatedAt and returns the stored result. Fields a
	// backend does not know (docker_auth extras) are preserved.
	UpdateUser(ctx context.Context, username string, fn func(*User) error) (*User, error)
	// DeleteUser returns ErrNotFound for an unknown name.
	DeleteUser(ctx context.Context, username string) error

	// ListRules returns all rules sorted by Seq. A stored rule that fails
	// to decode (unknown match key, wrong type) is an error naming its seq.
	ListRules(ctx context.Context) ([]acl.Rule, error)
	// AddRule returns ErrExists if the seq is taken.
	AddRule(ctx context.Context, r acl.Rule) error
	// RemoveRule returns ErrNotFound for an unknown seq.
	RemoveRule(ctx context.Context, seq int64) error
	// ReplaceRules replaces the whole rule set. Concurrent readers see the
	// old set, the new set, or an empty set (which denies), never a mixture.
	ReplaceRules(ctx context.Context, rules []acl.Rule) error

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	Close(ctx context.Context) error
}
