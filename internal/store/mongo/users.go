package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// User document fields. username, password and labels are docker_auth's;
// the rest are regctl's and absent from plain docker_auth documents.
const (
	fUsername  = "username"
	fPassword  = "password"
	fLabels    = "labels"
	fGrants    = "grants"
	fExpiresAt = "expires_at"
	fDisabled  = "disabled"
	fCreatedAt = "created_at"
	fUpdatedAt = "updated_at"
	fRev       = "rev"
)

// userFields are the fields UpdateUser may set or unset; any other field of
// a document is left as it is.
var userFields = []string{fPassword, fLabels, fGrants, fExpiresAt, fDisabled, fCreatedAt, fUpdatedAt}

// maxUpdateAttempts bounds UpdateUser's optimistic-concurrency retries.
const maxUpdateAttempts = 5

// GetUser returns the user named username, or an error wrapping
// store.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, username string) (*store.User, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	op := fmt.Sprintf("get user %q", username)
	u, _, err := s.loadUser(ctx, op, username)
	return u, err
}

func (s *Store) loadUser(ctx context.Context, op, username string) (*store.User, userRev, error) {
	raw, err := s.users.FindOne(ctx, bson.D{{Key: fUsername, Value: username}}).Raw()
	if err != nil {
		return nil, userRev{}, s.wrapErr(op, err)
	}
	u, rev, err := decodeUser(raw)
	if err != nil {
		return nil, userRev{}, fmt.Errorf("%s: %w", op, err)
	}
	return u, rev, nil
}

// ListUsers returns every user sorted by username (byte order).
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	const op = "list users"
	cur, err := s.users.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: fUsername, Value: 1}}))
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	users := []store.User{}
	for cur.Next(ctx) {
		u, _, err := decodeUser(cur.Current)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		users = append(users, *u)
	}
	if err := cur.Err(); err != nil {
		return nil, s.wrapErr(op, err)
	}
	// Do not rely on the server's collation for the order.
	slices.SortFunc(users, func(a, b store.User) int { return strings.Compare(a.Username, b.Username) })
	return users, nil
}

// CreateUser inserts u, or returns an error wrapping store.ErrExists if the
// name is taken (store.ErrInvalid if u cannot be stored). It sets u's
// CreatedAt and UpdatedAt when they are zero; all of u's times are stored
// truncated to milliseconds.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	op := fmt.Sprintf("create user %q", u.Username)
	if err := store.CheckUser(u); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	store.StampNew(u, s.nowMS())
	doc := bson.D{{Key: fUsername, Value: u.Username}}
	doc = append(doc, userSet(u)...)
	doc = append(doc, bson.E{Key: fRev, Value: int64(1)})
	_, err := s.users.InsertOne(ctx, doc)
	return s.wrapErr(op, err)
}

// UpdateUser loads the user, applies fn to it and writes the result back
// with $set/$unset of regctl's known fields only, so fields it does not know
// are preserved. Writers of one user are serialized by a lock document (see
// lock.go; FerretDB's conditional updates are not atomic), and the write is
// also conditional on the document's rev (or on its absence, for a
// docker_auth document): a writer that bypassed the lock makes it retry,
// calling fn again on the fresh user. It returns an error wrapping
// store.ErrConflict when the lock stays held or after maxUpdateAttempts. An
// error from fn is returned as is and nothing is written. fn may not change
// the username (an error wrapping store.ErrInvalid).
func (s *Store) UpdateUser(ctx context.Context, username string, fn func(*store.User) error) (*store.User, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	op := fmt.Sprintf("update user %q", username)
	release, err := s.lock(ctx, op, "user:"+username)
	if err != nil {
		return nil, err
	}
	defer release()
	for attempt := range maxUpdateAttempts {
		if attempt > 0 {
			if err := sleep(ctx, attempt); err != nil {
				return nil, s.wrapErr(op, err)
			}
		}
		u, rev, err := s.loadUser(ctx, op, username)
		if err != nil {
			return nil, err
		}
		if err := fn(u); err != nil {
			return nil, err
		}
		if err := store.CheckUpdated(u, username, store.CheckUser, s.nowMS); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}

		filter := bson.D{{Key: fUsername, Value: username}}
		if rev.present {
			filter = append(filter, bson.E{Key: fRev, Value: rev.value})
		} else {
			filter = append(filter, bson.E{Key: fRev, Value: bson.D{{Key: "$exists", Value: false}}})
		}
		set := append(userSet(u), bson.E{Key: fRev, Value: rev.value + 1})
		update := bson.D{{Key: "$set", Value: set}}
		if unset := userUnset(set); len(unset) > 0 {
			update = append(update, bson.E{Key: "$unset", Value: unset})
		}
		res, err := s.users.UpdateOne(ctx, filter, update)
		if err != nil {
			return nil, s.wrapErr(op, err)
		}
		if res.MatchedCount == 1 {
			return store.NormalizeTimes(u), nil
		}
		// Changed or deleted meanwhile: reload (ErrNotFound if deleted).
	}
	return nil, fmt.Errorf("%s: %w after %d attempts", op, store.ErrConflict, maxUpdateAttempts)
}

// DeleteUser removes the user, or returns an error wrapping
// store.ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.deleteOne(ctx, s.users, bson.D{{Key: fUsername, Value: username}}, fmt.Sprintf("delete user %q", username))
}

// deleteOne deletes the document matching filter in coll, or returns an
// error wrapping store.ErrNotFound; op names the operation in errors.
func (s *Store) deleteOne(ctx context.Context, coll *mongodrv.Collection, filter bson.D, op string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := coll.DeleteOne(ctx, filter)
	if err != nil {
		return s.wrapErr(op, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}

// userSet returns the stored fields of u other than username and rev, in a
// fixed order. Empty optional fields are omitted; password is always
// written, because docker_auth accepts any password for a document that
// lacks one.
func userSet(u *store.User) bson.D {
	d := bson.D{{Key: fPassword, Value: u.PasswordHash}}
	if len(u.Labels) > 0 {
		labels := bson.D{}
		for _, k := range slices.Sorted(maps.Keys(u.Labels)) {
			labels = append(labels, bson.E{Key: k, Value: stringArray(u.Labels[k])})
		}
		d = append(d, bson.E{Key: fLabels, Value: labels})
	}
	if len(u.Grants) > 0 {
		grants := bson.A{}
		for _, g := range u.Grants {
			gd := bson.D{{Key: "pattern", Value: g.Pattern}}
			if g.Actions != nil {
				gd = append(gd, bson.E{Key: "actions", Value: stringArray(g.Actions)})
			}
			if g.ExpiresAt != nil {
				gd = append(gd, bson.E{Key: fExpiresAt, Value: bson.NewDateTimeFromTime(*g.ExpiresAt)})
			}
			grants = append(grants, gd)
		}
		d = append(d, bson.E{Key: fGrants, Value: grants})
	}
	if u.ExpiresAt != nil {
		d = append(d, bson.E{Key: fExpiresAt, Value: bson.NewDateTimeFromTime(*u.ExpiresAt)})
	}
	if u.Disabled {
		d = append(d, bson.E{Key: fDisabled, Value: true})
	}
	if !u.CreatedAt.IsZero() {
		d = append(d, bson.E{Key: fCreatedAt, Value: bson.NewDateTimeFromTime(u.CreatedAt)})
	}
	if !u.UpdatedAt.IsZero() {
		d = append(d, bson.E{Key: fUpdatedAt, Value: bson.NewDateTimeFromTime(u.UpdatedAt)})
	}
	return d
}

// userUnset returns an $unset document for the known fields absent from
// set.
func userUnset(set bson.D) bson.D {
	var unset bson.D
	for _, f := range userFields {
		if !slices.ContainsFunc(set, func(e bson.E) bool { return e.Key == f }) {
			unset = append(unset, bson.E{Key: f, Value: ""})
		}
	}
	return unset
}

func stringArray(ss []string) bson.A {
	a := make(bson.A, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}

// userRev is a document's rev field: its value, and whether it exists
// (docker_auth documents have none).
type userRev struct {
	value   int64
	present bool
}

// decodeUser decodes a users document. Fields it does not know are
// ignored; known fields of the wrong type are an error naming the user.
func decodeUser(raw bson.Raw) (*store.User, userRev, error) {
	var u store.User
	var rev userRev
	elems, err := raw.Elements()
	if err != nil {
		return nil, rev, fmt.Errorf("decode user document: %w", err)
	}
	name, ok := raw.Lookup(fUsername).StringValueOK()
	if !ok {
		return nil, rev, fmt.Errorf("decode user document %s: username is not a string", raw.Lookup("_id"))
	}
	u.Username = name
	for _, e := range elems {
		k, v := e.Key(), e.Value()
		if v.Type == bson.TypeNull {
			continue
		}
		var err error
		switch k {
		case fPassword:
			var ok bool
			if u.PasswordHash, ok = v.StringValueOK(); !ok {
				err = typeErr(v, "a string")
			}
		case fLabels:
			u.Labels, err = decodeLabels(v)
		case fGrants:
			u.Grants, err = decodeGrants(v)
		case fExpiresAt:
			u.ExpiresAt, err = decodeTimePtr(v)
		case fDisabled:
			var ok bool
			if u.Disabled, ok = v.BooleanOK(); !ok {
				err = typeErr(v, "a boolean")
			}
		case fCreatedAt:
			u.CreatedAt, err = decodeTime(v)
		case fUpdatedAt:
			u.UpdatedAt, err = decodeTime(v)
		case fRev:
			rev.present = true
			if rev.value, err = decodeInt(v); err == nil && rev.value < 0 {
				err = fmt.Errorf("is negative")
			}
		}
		if err != nil {
			return nil, rev, fmt.Errorf("decode user %q: field %s: %w", u.Username, k, err)
		}
	}
	return &u, rev, nil
}

// decodeLabels decodes {key: [values]}; a single string value (which
// docker_auth tools sometimes write) becomes a one-element list.
func decodeLabels(v bson.RawValue) (map[string][]string, error) {
	elems, err := docElements(v)
	if err != nil {
		return nil, err
	}
	labels := make(map[string][]string, len(elems))
	for _, e := range elems {
		lv := e.Value()
		if s, ok := lv.StringValueOK(); ok {
			labels[e.Key()] = []string{s}
			continue
		}
		vals, err := decodeStrings(lv)
		if err != nil {
			return nil, fmt.Errorf("label %q: %w", e.Key(), err)
		}
		if vals == nil {
			vals = []string{}
		}
		labels[e.Key()] = vals
	}
	return labels, nil
}

func decodeGrants(v bson.RawValue) ([]acl.Grant, error) {
	vals, err := arrayValues(v, "an array")
	if err != nil {
		return nil, err
	}
	var grants []acl.Grant
	for i, gv := range vals {
		var g acl.Grant
		elems, err := docElements(gv)
		if err != nil {
			return nil, fmt.Errorf("grant %d: %w", i, err)
		}
		for _, e := range elems {
			ev := e.Value()
			if ev.Type == bson.TypeNull {
				continue
			}
			var err error
			switch e.Key() {
			case "pattern":
				var ok bool
				if g.Pattern, ok = ev.StringValueOK(); !ok {
					err = typeErr(ev, "a string")
				}
			case "actions":
				g.Actions, err = decodeStrings(ev)
			case fExpiresAt:
				g.ExpiresAt, err = decodeTimePtr(ev)
			default:
				err = errors.New("unknown field")
			}
			if err != nil {
				return nil, fmt.Errorf("grant %d: %s: %w", i, e.Key(), err)
			}
		}
		grants = append(grants, g)
	}
	return grants, nil
}

// decodeStrings decodes an array of strings; an empty array is an empty,
// non-nil slice.
func decodeStrings(v bson.RawValue) ([]string, error) {
	vals, err := arrayValues(v, "an array of strings")
	if err != nil {
		return nil, err
	}
	ss := make([]string, 0, len(vals))
	for _, sv := range vals {
		s, ok := sv.StringValueOK()
		if !ok {
			return nil, typeErr(sv, "a string element")
		}
		ss = append(ss, s)
	}
	return ss, nil
}

func decodeTime(v bson.RawValue) (time.Time, error) {
	ms, ok := v.DateTimeOK()
	if !ok {
		return time.Time{}, typeErr(v, "a date")
	}
	return time.UnixMilli(ms).UTC(), nil
}

func decodeTimePtr(v bson.RawValue) (*time.Time, error) {
	t, err := decodeTime(v)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// decodeInt accepts int32, int64 and integral doubles (what the mongo shell
// writes for a literal number).
func decodeInt(v bson.RawValue) (int64, error) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), nil
	case bson.TypeInt64:
		return v.Int64(), nil
	case bson.TypeDouble:
		f := v.Double()
		if f == float64(int64(f)) && f >= -(1<<53) && f <= 1<<53 {
			return int64(f), nil
		}
		return 0, fmt.Errorf("is %v, not an integer", f)
	}
	return 0, typeErr(v, "an integer")
}

// docElements returns the elements of v, which must be a document.
func docElements(v bson.RawValue) ([]bson.RawElement, error) {
	doc, ok := v.DocumentOK()
	if !ok {
		return nil, typeErr(v, "a document")
	}
	return doc.Elements()
}

// arrayValues returns the values of v, which must be an array; want
// describes one in the error.
func arrayValues(v bson.RawValue, want string) ([]bson.RawValue, error) {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, typeErr(v, want)
	}
	return arr.Values()
}

func typeErr(v bson.RawValue, want string) error {
	return fmt.Errorf("is a BSON %s, not %s", v.Type, want)
}
