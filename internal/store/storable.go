package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/acl"
)

// This file holds the storage constraints every backend applies alike, so
// data stays portable between backends. They are deliberately looser than
// the admin-facing checks in validate.go: a backend must still read and
// write what an existing docker_auth database holds.

// ErrInvalid means the record cannot be stored as given, for example a label
// key that a document store cannot hold.
var ErrInvalid = errors.New("invalid record")

// TimePrecision is the resolution every backend stores times at (MongoDB's
// date type holds milliseconds). Backends truncate to it, so values written
// and read back compare equal; callers that need exact round trips use
// times that are already multiples of it.
const TimePrecision = time.Millisecond

// NormalizeTimes returns u with every time as a store keeps it (see
// Truncate): what a read after the write gives back.
func NormalizeTimes(u *User) *User {
	if u.ExpiresAt != nil {
		t := Truncate(*u.ExpiresAt)
		u.ExpiresAt = &t
	}
	for i := range u.Grants {
		if g := &u.Grants[i]; g.ExpiresAt != nil {
			t := Truncate(*g.ExpiresAt)
			g.ExpiresAt = &t
		}
	}
	u.CreatedAt, u.UpdatedAt = Truncate(u.CreatedAt), Truncate(u.UpdatedAt)
	return u
}

// Truncate returns t truncated to TimePrecision, in UTC. The zero time stays
// zero.
func Truncate(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(TimePrecision).UTC()
}

// CheckLabelKey reports whether k can be stored as a label key: non-empty,
// no '.', no leading '$' and no NUL byte (the constraints of MongoDB
// document keys). The error wraps ErrInvalid.
func CheckLabelKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("label key is empty: %w", ErrInvalid)
	case strings.Contains(k, "."):
		return fmt.Errorf("label key %q contains '.': %w", k, ErrInvalid)
	case strings.HasPrefix(k, "$"):
		return fmt.Errorf("label key %q starts with '$': %w", k, ErrInvalid)
	case strings.IndexByte(k, 0) >= 0:
		return fmt.Errorf("label key %q contains a NUL byte: %w", k, ErrInvalid)
	}
	return nil
}

// CheckUser reports whether u can be stored: a non-empty username and
// storable label keys. The error wraps ErrInvalid.
func CheckUser(u *User) error {
	if u.Username == "" {
		return fmt.Errorf("username is empty: %w", ErrInvalid)
	}
	for k := range u.Labels {
		if err := CheckLabelKey(k); err != nil {
			return fmt.Errorf("user %q: %w", u.Username, err)
		}
	}
	return nil
}

// CheckRule reports whether r can be stored: storable match label keys.
// acl validates what the rule means. The error wraps ErrInvalid.
func CheckRule(r acl.Rule) error {
	for k := range r.Match.Labels {
		if err := CheckLabelKey(k); err != nil {
			return fmt.Errorf("rule seq %d: match %w", r.Seq, err)
		}
	}
	return nil
}

// StampNew sets u's CreatedAt and UpdatedAt to now when they are zero and
// truncates both, as CreateUser does before it writes.
func StampNew(u *User, now time.Time) {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = now
	}
	u.CreatedAt, u.UpdatedAt = Truncate(u.CreatedAt), Truncate(u.UpdatedAt)
}

// CheckUpdated is what UpdateUser does between its fn and the write: the
// username must still be username (an error wrapping ErrInvalid), u must
// pass check (CheckUser, or a backend's stricter one), then UpdatedAt
// becomes now() and CreatedAt is truncated. The errors carry no operation
// prefix.
func CheckUpdated(u *User, username string, check func(*User) error, now func() time.Time) error {
	if u.Username != username {
		return fmt.Errorf("username cannot change (to %q): %w", u.Username, ErrInvalid)
	}
	if err := check(u); err != nil {
		return err
	}
	u.UpdatedAt = now()
	u.CreatedAt = Truncate(u.CreatedAt)
	return nil
}
