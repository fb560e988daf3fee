package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// User is store.User; the alias keeps signatures short.
type User = store.User

const (
	userColumns = "username, password_hash, labels, grants, expires_at, disabled, created_at, updated_at, rev"
	qSelectUser = "SELECT " + userColumns + " FROM users WHERE username = ?"
)

// GetUser returns the user named username, or an error wrapping
// store.ErrNotFound. Names compare byte for byte (case matters).
func (s *Store) GetUser(ctx context.Context, username string) (*User, error) {
	op := fmt.Sprintf("get user %q", username)
	var u *User
	err := s.read(ctx, op, func(ctx context.Context) error {
		var err error
		u, _, err = scanUser(s.queryRow(ctx, qSelectUser, username))
		return err
	})
	return u, err
}

// ListUsers returns every user sorted by username (byte order).
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	const op = "list users"
	var users []User
	err := s.read(ctx, op, func(ctx context.Context) error {
		users = []User{}
		rows, err := s.query(ctx, "SELECT "+userColumns+" FROM users ORDER BY username")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			u, _, err := scanUser(rows)
			if err != nil {
				return err
			}
			users = append(users, *u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}

// CreateUser inserts u, or returns an error wrapping store.ErrExists if the
// name is taken (store.ErrInvalid if u cannot be stored). It sets u's
// CreatedAt and UpdatedAt when they are zero; all of u's times are stored
// truncated to milliseconds.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	op := fmt.Sprintf("create user %q", u.Username)
	if err := checkUser(u); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	store.StampNew(u, s.nowMS())
	row, err := encodeUser(u)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		return s.txExecOne(ctx, tx, store.ErrExists, qInsertUser, u.Username, u.PasswordHash, row.labels, row.grants, row.expiresAt, u.Disabled, row.createdAt, row.updatedAt)
	})
}

// UpdateUser loads the user, applies fn to it and writes the result back,
// all in one write transaction: no other writer, in this process or
// another, can change the user in between, so no update is lost and
// store.ErrConflict is never returned. fn runs while the database is
// locked for writing: it should be quick and must not call the store's
// write methods (they would wait for the lock fn holds until the
// timeout). It is called again if the transaction has to be retried
// because another process held the lock. An
// error from fn is returned unchanged and nothing is written. fn may not
// change the username (an error wrapping store.ErrInvalid). UpdateUser sets
// UpdatedAt to the current time and returns the user as stored.
func (s *Store) UpdateUser(ctx context.Context, username string, fn func(*User) error) (*User, error) {
	op := fmt.Sprintf("update user %q", username)
	var result *User
	err := s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		u, rev, err := scanUser(s.txQueryRow(ctx, tx, qSelectUser, username))
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return fnError{err}
		}
		if err := store.CheckUpdated(u, username, checkUser, s.nowMS); err != nil {
			return err
		}
		row, err := encodeUser(u)
		if err != nil {
			return err
		}
		res, err := s.txExec(ctx, tx, qUpdateUser,
			u.PasswordHash, row.labels, row.grants, row.expiresAt, u.Disabled, row.createdAt, row.updatedAt,
			username, rev)
		if err != nil {
			return err
		}
		// The write lock makes this impossible; check anyway.
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return store.ErrConflict
		}
		result = store.NormalizeTimes(u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}

// DeleteUser removes the user, or returns an error wrapping
// store.ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.deleteRow(ctx, fmt.Sprintf("delete user %q", username), qDeleteUser, username)
}

// deleteRow runs the delete statement q with key in a write transaction,
// returning store.ErrNotFound when it deleted nothing; op names the
// operation in errors.
func (s *Store) deleteRow(ctx context.Context, op, q string, key any) error {
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		return s.txExecOne(ctx, tx, store.ErrNotFound, q, key)
	})
}

// checkUser applies store.CheckUser and rejects strings that JSON cannot
// carry unchanged.
func checkUser(u *User) error {
	if err := store.CheckUser(u); err != nil {
		return err
	}
	for k, vs := range u.Labels {
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return fmt.Errorf("user %q: label %q: value is not valid UTF-8: %w", u.Username, k, store.ErrInvalid)
			}
		}
		if !utf8.ValidString(k) {
			return fmt.Errorf("user %q: label key %q is not valid UTF-8: %w", u.Username, k, store.ErrInvalid)
		}
	}
	for i, g := range u.Grants {
		ok := utf8.ValidString(g.Pattern)
		for _, a := range g.Actions {
			ok = ok && utf8.ValidString(a)
		}
		if !ok {
			return fmt.Errorf("user %q: grant %d is not valid UTF-8: %w", u.Username, i, store.ErrInvalid)
		}
	}
	return nil
}

// grantJSON is a grant as stored in users.grants: an absent actions key is
// a nil list, [] an empty one.
type grantJSON struct {
	Pattern   string   `json:"pattern"`
	Actions   []string `json:"actions,omitzero"`
	ExpiresAt *int64   `json:"expires_at,omitempty"`
}

// userRow is a user's columns in their stored form.
type userRow struct {
	labels, grants                  sql.NullString
	expiresAt, createdAt, updatedAt sql.NullInt64
}

func encodeUser(u *User) (userRow, error) {
	var row userRow
	if len(u.Labels) > 0 {
		labels := make(map[string][]string, len(u.Labels))
		for k, vs := range u.Labels {
			if vs == nil {
				vs = []string{}
			}
			labels[k] = vs
		}
		b, err := json.Marshal(labels)
		if err != nil {
			return row, fmt.Errorf("encode labels: %w", err)
		}
		row.labels = sql.NullString{String: string(b), Valid: true}
	}
	if len(u.Grants) > 0 {
		grants := make([]grantJSON, len(u.Grants))
		for i, g := range u.Grants {
			grants[i] = grantJSON{Pattern: g.Pattern, Actions: g.Actions, ExpiresAt: msPtr(g.ExpiresAt)}
		}
		b, err := json.Marshal(grants)
		if err != nil {
			return row, fmt.Errorf("encode grants: %w", err)
		}
		row.grants = sql.NullString{String: string(b), Valid: true}
	}
	row.expiresAt = nullMS(u.ExpiresAt)
	row.createdAt = nullTime(u.CreatedAt)
	row.updatedAt = nullTime(u.UpdatedAt)
	return row, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanUser reads a row of userColumns; sql.ErrNoRows becomes
// store.ErrNotFound.
func scanUser(sc scanner) (*User, int64, error) {
	var u User
	var row userRow
	var rev int64
	err := sc.Scan(&u.Username, &u.PasswordHash, &row.labels, &row.grants, &row.expiresAt,
		&u.Disabled, &row.createdAt, &row.updatedAt, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	if row.labels.Valid {
		if err := json.Unmarshal([]byte(row.labels.String), &u.Labels); err != nil {
			return nil, 0, decodeError{fmt.Errorf("decode user %q: labels: %w", u.Username, err)}
		}
		for k, vs := range u.Labels {
			if vs == nil {
				u.Labels[k] = []string{}
			}
		}
	}
	if row.grants.Valid {
		var grants []grantJSON
		if err := unmarshalStrict(row.grants.String, &grants); err != nil {
			return nil, 0, decodeError{fmt.Errorf("decode user %q: grants: %w", u.Username, err)}
		}
		if len(grants) > 0 {
			u.Grants = make([]acl.Grant, len(grants))
			for i, g := range grants {
				u.Grants[i] = acl.Grant{Pattern: g.Pattern, Actions: g.Actions, ExpiresAt: timePtr(g.ExpiresAt)}
			}
		}
	}
	if row.expiresAt.Valid {
		u.ExpiresAt = timePtr(&row.expiresAt.Int64)
	}
	if row.createdAt.Valid {
		u.CreatedAt = fromMS(row.createdAt.Int64)
	}
	if row.updatedAt.Valid {
		u.UpdatedAt = fromMS(row.updatedAt.Int64)
	}
	return &u, rev, nil
}

// unmarshalStrict decodes JSON, rejecting unknown object keys.
func unmarshalStrict(data string, v any) error {
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// toMS is t in Unix milliseconds, truncated like store.Truncate.
func toMS(t time.Time) int64 { return store.Truncate(t).UnixMilli() }

// fromMS is the UTC time of Unix milliseconds ms.
func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func msPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	ms := toMS(*t)
	return &ms
}

func timePtr(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := fromMS(*ms)
	return &t
}

func nullMS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toMS(*t), Valid: true}
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toMS(t), Valid: true}
}
