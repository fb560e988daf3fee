package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// ACL document fields (docker_auth's, plus expires_at).
const (
	fSeq     = "seq"
	fMatch   = "match"
	fActions = "actions"
	fComment = "comment"
)

// Server error codes.
const (
	codeNamespaceNotFound = 26
	codeCursorNotFound    = 43
	codeNamespaceExists   = 48
	codeQueryPlanKilled   = 175
	codeCursorKilled      = 237

	codeIndexOptionsConflict  = 85
	codeIndexKeySpecsConflict = 86
)

// ListRules returns every rule sorted by Seq. A document that does not
// decode (missing or non-integer seq, missing match, an unknown field or
// match key, a wrong type) is an error naming its seq, as are two documents
// with the same seq: a rule set that cannot be read exactly is not used.
func (s *Store) ListRules(ctx context.Context) ([]acl.Rule, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	const op = "list rules"
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			if err := sleep(ctx, attempt); err != nil {
				return nil, s.wrapErr(op, err)
			}
		}
		var rules []acl.Rule
		rules, err = s.listRules(ctx)
		if !retryableRead(err) {
			if err != nil {
				return nil, s.wrapErr(op, err)
			}
			return rules, nil
		}
	}
	return nil, s.wrapErr(op, err)
}

// retryableRead reports whether a read failed because ReplaceRules swapped
// the collection under its cursor.
func retryableRead(err error) bool {
	var se mongodrv.ServerError
	return errors.As(err, &se) &&
		(se.HasErrorCode(codeQueryPlanKilled) || se.HasErrorCode(codeCursorNotFound) || se.HasErrorCode(codeCursorKilled))
}

// decodeError is an error in a stored document; wrapErr passes it through.
type decodeError struct{ error }

func (e decodeError) Unwrap() error { return e.error }

func (s *Store) listRules(ctx context.Context) ([]acl.Rule, error) {
	cur, err := s.rules.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: fSeq, Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	rules := []acl.Rule{}
	for cur.Next(ctx) {
		r, err := decodeRule(cur.Current)
		if err != nil {
			return nil, decodeError{err}
		}
		rules = append(rules, r)
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	// Do not rely on the server's numeric ordering across BSON types.
	slices.SortStableFunc(rules, func(a, b acl.Rule) int { return cmp.Compare(a.Seq, b.Seq) })
	for i := 1; i < len(rules); i++ {
		if rules[i].Seq == rules[i-1].Seq {
			return nil, decodeError{fmt.Errorf("acl rule seq %d: stored twice", rules[i].Seq)}
		}
	}
	return rules, nil
}

// AddRule inserts r, or returns an error wrapping store.ErrExists if its
// seq is taken (store.ErrInvalid if r cannot be stored).
func (s *Store) AddRule(ctx context.Context, r acl.Rule) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	op := fmt.Sprintf("add rule seq %d", r.Seq)
	if err := store.CheckRule(r); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if _, err := s.rules.InsertOne(ctx, encodeRule(r)); err != nil {
		return s.wrapErr(op, err)
	}
	s.bumpRules(ctx)
	return nil
}

// RemoveRule deletes the rule with seq, or returns an error wrapping
// store.ErrNotFound.
func (s *Store) RemoveRule(ctx context.Context, seq int64) error {
	if err := s.deleteOne(ctx, s.rules, bson.D{{Key: fSeq, Value: seq}}, fmt.Sprintf("remove rule seq %d", seq)); err != nil {
		return err
	}
	s.bumpRules(ctx)
	return nil
}

// ReplaceRules replaces the whole rule set. Without transactions (FerretDB
// has none) it swaps collections: it writes the new set, with its unique
// seq index, to a fresh collection, renames the live collection aside,
// renames the fresh one into its place and drops the old one. Deleting and
// re-inserting documents in place would let a concurrent reader see a
// mixture of the old and new sets (deleteMany is not atomic), for example
// an allow rule without the deny rule that preceded it, which fails open.
// With the swap a reader sees the old set, the new set or, between the two
// renames, no collection and so no rules, which denies everything: it fails
// closed. A rule added concurrently may be lost, as if added before the
// replacement. Other indexes and options of the live collection are not
// carried over. If the process dies between the renames the rule set is
// empty until the next ReplaceRules, and a collection named
// "<acl>_regctl_old_<hex>" holds the old rules. Duplicate seqs in rules are
// an error wrapping store.ErrExists, and nothing changes. Like AddRule and
// RemoveRule, it replaces the change marker afterwards (see RulesVersion).
func (s *Store) ReplaceRules(ctx context.Context, rules []acl.Rule) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	const op = "replace rules"
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b acl.Rule) int { return cmp.Compare(a.Seq, b.Seq) })
	docs := make([]any, len(sorted))
	for i, r := range sorted {
		if err := store.CheckRule(r); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if i > 0 && r.Seq == sorted[i-1].Seq {
			return fmt.Errorf("%s: seq %d given twice: %w", op, r.Seq, store.ErrExists)
		}
		docs[i] = encodeRule(r)
	}

	live := s.rules.Name()
	fresh := s.db.Collection(fmt.Sprintf("%s_regctl_new_%016x", live, rand.Uint64()))
	if _, err := fresh.Indexes().CreateOne(ctx, uniqueIndex(fSeq)); err != nil {
		return s.wrapErr(op+": create new collection", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			s.dropQuietly(ctx, fresh.Name())
		}
	}()
	if len(docs) > 0 {
		if _, err := fresh.InsertMany(ctx, docs); err != nil {
			return s.wrapErr(op+": write new rules", err)
		}
	}
	var asides []string // where live collections were moved, oldest first
	defer func() {
		// Once the live collection was touched, the rule set may have
		// changed, even if this fails.
		if swapped || len(asides) > 0 {
			s.bumpRules(ctx)
		}
	}()
	defer func() {
		if swapped {
			for _, a := range asides {
				s.dropQuietly(ctx, a)
			}
		}
	}()
	for range 5 {
		aside := fmt.Sprintf("%s_regctl_old_%016x", live, rand.Uint64())
		switch err := s.rename(ctx, live, aside); {
		case err == nil:
			asides = append(asides, aside)
		case hasCode(err, codeNamespaceNotFound):
			// No live collection: nothing to move.
		default:
			return s.wrapErr(op+": move old rules aside", err)
		}
		err := s.rename(ctx, fresh.Name(), live)
		if err == nil {
			swapped = true
			return nil
		}
		if hasCode(err, codeNamespaceExists) {
			// Someone (an AddRule, docker_auth creating its index)
			// recreated the live collection meanwhile: move it aside
			// too, next round.
			continue
		}
		if len(asides) == 0 {
			return s.wrapErr(op+": install new rules", err)
		}
		// Put the old rules back rather than leave none.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		rerr := s.rename(rctx, asides[0], live)
		rcancel()
		if rerr != nil {
			return s.wrapErr(fmt.Sprintf("%s: install new rules (old rules left in collection %s)", op, asides[0]), err)
		}
		for _, a := range asides[1:] {
			s.dropQuietly(ctx, a)
		}
		return s.wrapErr(op+": install new rules", err)
	}
	for _, a := range asides[1:] {
		s.dropQuietly(ctx, a)
	}
	if len(asides) > 0 {
		return fmt.Errorf("%s: collection %s keeps being recreated (old rules left in collection %s): %w",
			op, live, asides[0], store.ErrConflict)
	}
	return fmt.Errorf("%s: collection %s keeps being recreated: %w", op, live, store.ErrConflict)
}

// rename renames a collection of the store's database (renameCollection
// without dropTarget, which FerretDB lacks).
func (s *Store) rename(ctx context.Context, from, to string) error {
	db := s.db.Name()
	cmd := bson.D{{Key: "renameCollection", Value: db + "." + from}, {Key: "to", Value: db + "." + to}}
	return s.client.Database("admin").RunCommand(ctx, cmd).Err()
}

// dropQuietly drops a scratch collection, ignoring errors: a leftover is
// harmless and named for what it is. It gets at most a second, even after
// ctx has ended, so a failing ReplaceRules still returns promptly.
func (s *Store) dropQuietly(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.timeout, time.Second))
	defer cancel()
	_ = s.db.Collection(name).Drop(ctx)
}

func hasCode(err error, code int) bool {
	var se mongodrv.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

// encodeRule returns r's document. match is always present (docker_auth
// dereferences it); actions is absent only for nil Actions, so an explicit
// deny ([]) stays distinct from an invalid rule.
func encodeRule(r acl.Rule) bson.D {
	m := bson.D{}
	for _, f := range []struct {
		key string
		val *string
	}{
		{"account", r.Match.Account},
		{"type", r.Match.Type},
		{"name", r.Match.Name},
		{"service", r.Match.Service},
		{"ip", r.Match.IP},
	} {
		if f.val != nil {
			m = append(m, bson.E{Key: f.key, Value: *f.val})
		}
	}
	if len(r.Match.Labels) > 0 {
		labels := bson.D{}
		for _, k := range slices.Sorted(maps.Keys(r.Match.Labels)) {
			labels = append(labels, bson.E{Key: k, Value: r.Match.Labels[k]})
		}
		m = append(m, bson.E{Key: fLabels, Value: labels})
	}
	d := bson.D{{Key: fSeq, Value: r.Seq}, {Key: fMatch, Value: m}}
	if r.Actions != nil {
		d = append(d, bson.E{Key: fActions, Value: stringArray(r.Actions)})
	}
	if r.Comment != "" {
		d = append(d, bson.E{Key: fComment, Value: r.Comment})
	}
	if r.ExpiresAt != nil {
		d = append(d, bson.E{Key: fExpiresAt, Value: bson.NewDateTimeFromTime(*r.ExpiresAt)})
	}
	return d
}

// decodeRule decodes an acl document strictly: docker_auth would ignore an
// unknown match key and so match more widely than the author meant.
func decodeRule(raw bson.Raw) (acl.Rule, error) {
	var r acl.Rule
	seqVal, err := raw.LookupErr(fSeq)
	if err != nil || seqVal.Type == bson.TypeNull {
		return r, fmt.Errorf("acl document _id %s: missing seq", raw.Lookup("_id"))
	}
	if r.Seq, err = decodeInt(seqVal); err != nil {
		return r, fmt.Errorf("acl document _id %s: seq %w", raw.Lookup("_id"), err)
	}
	elems, err := raw.Elements()
	if err != nil {
		return r, fmt.Errorf("acl rule seq %d: %w", r.Seq, err)
	}
	hasMatch := false
	for _, e := range elems {
		k, v := e.Key(), e.Value()
		var err error
		switch k {
		case "_id", fSeq:
		case fMatch:
			hasMatch = v.Type != bson.TypeNull
			if hasMatch {
				r.Match, err = decodeMatch(v)
			}
		case fActions:
			if v.Type != bson.TypeNull {
				r.Actions, err = decodeStrings(v)
			}
		case fComment:
			if v.Type != bson.TypeNull {
				var ok bool
				if r.Comment, ok = v.StringValueOK(); !ok {
					err = typeErr(v, "a string")
				}
			}
		case fExpiresAt:
			if v.Type != bson.TypeNull {
				r.ExpiresAt, err = decodeTimePtr(v)
			}
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			return r, fmt.Errorf("acl rule seq %d: %s: %w", r.Seq, k, err)
		}
	}
	if !hasMatch {
		return r, fmt.Errorf("acl rule seq %d: missing match", r.Seq)
	}
	return r, nil
}

func decodeMatch(v bson.RawValue) (acl.Match, error) {
	var m acl.Match
	elems, err := docElements(v)
	if err != nil {
		return m, err
	}
	for _, e := range elems {
		k, ev := e.Key(), e.Value()
		var err error
		switch k {
		case "account":
			m.Account, err = decodeStringPtr(ev)
		case "type":
			m.Type, err = decodeStringPtr(ev)
		case "name":
			m.Name, err = decodeStringPtr(ev)
		case "service":
			m.Service, err = decodeStringPtr(ev)
		case "ip":
			m.IP, err = decodeStringPtr(ev)
		case fLabels:
			m.Labels, err = decodeMatchLabels(ev)
		default:
			err = errors.New("unknown match key")
		}
		if err != nil {
			return m, fmt.Errorf("%s: %w", k, err)
		}
	}
	return m, nil
}

// decodeStringPtr decodes an optional string; null is absent.
func decodeStringPtr(v bson.RawValue) (*string, error) {
	if v.Type == bson.TypeNull {
		return nil, nil
	}
	s, ok := v.StringValueOK()
	if !ok {
		return nil, typeErr(v, "a string")
	}
	return &s, nil
}

func decodeMatchLabels(v bson.RawValue) (map[string]string, error) {
	if v.Type == bson.TypeNull {
		return nil, nil
	}
	elems, err := docElements(v)
	if err != nil {
		return nil, err
	}
	labels := make(map[string]string, len(elems))
	for _, e := range elems {
		s, ok := e.Value().StringValueOK()
		if !ok {
			return nil, fmt.Errorf("label %q: %w", e.Key(), typeErr(e.Value(), "a string"))
		}
		labels[e.Key()] = s
	}
	return labels, nil
}
