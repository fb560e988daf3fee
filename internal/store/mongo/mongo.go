// Package mongo is the MongoDB backend of store.Store. Its documents are
// those of cesanta/docker_auth (users: username, password, labels; acl: seq,
// match, actions, comment), so an existing docker_auth database works
// unchanged, plus regctl's optional fields. It uses only operations that
// both MongoDB ≥ 5 and FerretDB 1.x support: no transactions, no TTL
// indexes, no positional updates, and no document keys built from user
// data.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/storeerr"
)

// Defaults. The collection names are docker_auth's usual ones.
const (
	DefaultDatabase        = "regctl"
	DefaultUsersCollection = "users"
	DefaultRulesCollection = "acl"
	// DefaultTimeout bounds every operation, server selection and
	// connecting, so a dead store fails fast.
	DefaultTimeout = 5 * time.Second
)

// Store is a store.Store on a MongoDB (or FerretDB) database. It is safe
// for concurrent use.
//
// It also has RulesVersion, which the token server polls every reload
// interval, listing and compiling the rules only when the value moved.
// Without change streams (FerretDB has none) MongoDB offers no cheap,
// complete change marker, so the value combines a marker document in
// regctl_meta that every rule change made through Store replaces, the
// number of rules, and a time bucket of ExternalEditBound (30 s): changes
// made through regctl, and rules inserted or deleted by any program, are
// seen at the next poll; a rule edited in place by another program (mongosh,
// docker_auth tooling) within ExternalEditBound plus the poll interval. The
// rules are thus listed at most once per poll interval after a change, and
// otherwise once per ExternalEditBound.
type Store struct {
	client *mongodrv.Client
	db     *mongodrv.Database
	users  *mongodrv.Collection
	rules  *mongodrv.Collection
	locks  *mongodrv.Collection
	meta   *mongodrv.Collection // see RulesVersion
	// attempts is the login attempt log (store.AttemptLog).
	attempts *mongodrv.Collection
	timeout  time.Duration
	now      func() time.Time
	// versionNow is RulesVersion's clock: now, unless a test pins it to
	// keep the time bucket still while other timestamps advance.
	versionNow func() time.Time
	// bucketPhase shifts RulesVersion's time buckets by a random part of
	// ExternalEditBound, so that token servers sharing a database do not
	// all list the rules at the same instant.
	bucketPhase time.Duration
	secrets     []string // scrubbed from every error message

	// stripes serialize this process's UpdateUser calls per user (by
	// hash) before they compete for the lock document.
	stripes [64]chan struct{}
	seed    maphash.Seed
}

var _ store.Store = (*Store)(nil)

type config struct {
	database, users, rules, locks, meta, attempts string
	timeout                                       time.Duration
	now                                           func() time.Time
}

// Option configures Open.
type Option func(*config)

// WithDatabase overrides the database named by the URI's path.
func WithDatabase(name string) Option { return func(c *config) { c.database = name } }

// WithUsersCollection overrides the users collection name ("users").
func WithUsersCollection(name string) Option { return func(c *config) { c.users = name } }

// WithRulesCollection overrides the ACL collection name ("acl").
func WithRulesCollection(name string) Option { return func(c *config) { c.rules = name } }

// WithLocksCollection overrides the name of the collection of UpdateUser's
// lock documents (DefaultLocksCollection).
func WithLocksCollection(name string) Option { return func(c *config) { c.locks = name } }

// WithMetaCollection overrides the name of the collection of the rules
// change marker (DefaultMetaCollection; see RulesVersion).
func WithMetaCollection(name string) Option { return func(c *config) { c.meta = name } }

// WithAttemptsCollection overrides the name of the collection of the
// login attempt log (DefaultAttemptsCollection; see AddAttempts).
func WithAttemptsCollection(name string) Option { return func(c *config) { c.attempts = name } }

// WithTimeout overrides DefaultTimeout: the bound of each operation and,
// unless the URI sets serverSelectionTimeoutMS or connectTimeoutMS, of
// server selection and connecting.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithClock sets the clock used for CreatedAt, UpdatedAt, lock leases and
// RulesVersion's time bucket (time.Now by default).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Open connects to the MongoDB deployment of uri (any connection string the
// driver accepts: replica sets, TLS, authSource, mongodb+srv) and ensures
// the unique indexes users.username and acl.seq, which docker_auth creates
// too, and regctl_locks.key (see UpdateUser). The database is the URI's
// path, or "regctl" when it has none. Open fails with an error wrapping
// store.ErrUnavailable when the server does not answer within the timeout.
// Errors never contain the URI's password; use Redact to log the URI.
func Open(ctx context.Context, uri string, opts ...Option) (*Store, error) {
	cfg := config{
		users:    DefaultUsersCollection,
		rules:    DefaultRulesCollection,
		locks:    DefaultLocksCollection,
		meta:     DefaultMetaCollection,
		timeout:  DefaultTimeout,
		attempts: DefaultAttemptsCollection,
		now:      time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	secrets := uriSecrets(uri)
	if cfg.timeout <= 0 {
		return nil, errors.New("open mongo store: timeout must be positive")
	}
	if cfg.database == "" {
		cfg.database = uriDatabase(uri)
	}
	if cfg.database == "" {
		cfg.database = DefaultDatabase
	}
	names := []string{cfg.users, cfg.rules, cfg.locks, cfg.meta, cfg.attempts}
	if slices.Contains(names, "") || len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
		return nil, fmt.Errorf("open mongo store: collection names %q, %q, %q, %q and %q must be distinct and non-empty",
			cfg.users, cfg.rules, cfg.locks, cfg.meta, cfg.attempts)
	}

	co := options.Client().ApplyURI(uri)
	// ApplyURI sets these only when the URI has them.
	if co.ServerSelectionTimeout == nil {
		co.SetServerSelectionTimeout(cfg.timeout)
	}
	if co.ConnectTimeout == nil {
		co.SetConnectTimeout(cfg.timeout)
	}
	client, err := mongodrv.Connect(co)
	if err != nil {
		// Invalid URIs and failed SRV look-ups end here.
		msg := "open mongo store: " + scrubSecrets(storeerr.OneLine(err.Error()), secrets)
		if _, ok := errors.AsType[*net.DNSError](err); ok {
			return nil, storeerr.New(msg, store.ErrUnavailable, err)
		}
		return nil, storeerr.New(msg, err)
	}
	db := client.Database(cfg.database)
	s := &Store{
		client:      client,
		db:          db,
		users:       db.Collection(cfg.users),
		rules:       db.Collection(cfg.rules),
		locks:       db.Collection(cfg.locks),
		meta:        db.Collection(cfg.meta),
		attempts:    db.Collection(cfg.attempts),
		timeout:     cfg.timeout,
		now:         cfg.now,
		versionNow:  cfg.now,
		bucketPhase: rand.N(ExternalEditBound),
		secrets:     secrets,
		seed:        maphash.MakeSeed(),
	}
	for i := range s.stripes {
		s.stripes[i] = make(chan struct{}, 1)
	}
	if err := s.ensureIndexes(ctx); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.timeout)
		defer cancel()
		_ = client.Disconnect(dctx)
		return nil, err
	}
	return s, nil
}

// uniqueIndex returns a unique index on field named as the driver and
// docker_auth name it ("field_1"), so creating it on a docker_auth database
// is a no-op. It is built afresh for each use: the driver writes to an
// IndexModel's options, so sharing one between goroutines is a data race.
func uniqueIndex(field string) mongodrv.IndexModel {
	return mongodrv.IndexModel{
		Keys:    bson.D{{Key: field, Value: 1}},
		Options: options.Index().SetUnique(true).SetName(field + "_1"),
	}
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	for _, ix := range []struct {
		coll  *mongodrv.Collection
		field string
	}{
		{s.users, fUsername},
		{s.rules, fSeq},
		{s.locks, fKey},
	} {
		op := fmt.Sprintf("open mongo store: create unique index on %s.%s", ix.coll.Name(), ix.field)
		_, err := ix.coll.Indexes().CreateOne(ctx, uniqueIndex(ix.field))
		switch {
		case err == nil, hasCode(err, codeIndexOptionsConflict), hasCode(err, codeIndexKeySpecsConflict):
			// An index of that name, or on that field under another
			// name, may exist with other options: MongoDB says so with
			// a conflict, FerretDB keeps the old index silently. Any
			// unique index on the field will do; check there is one.
			unique, lerr := hasUniqueIndex(ctx, ix.coll, ix.field)
			if lerr != nil {
				return s.wrapErr(op, lerr)
			}
			if !unique {
				return fmt.Errorf("%s: an index on %s exists but is not unique; drop it", op, ix.field)
			}
			continue
		case unavailable(err) || errors.Is(err, context.Canceled):
			return s.wrapErr(op, err)
		}
		msg := s.scrub(storeerr.OneLine(err.Error()))
		if mongodrv.IsDuplicateKeyError(err) || strings.Contains(msg, "UNIQUE constraint") || strings.Contains(msg, "constraint fa") {
			// MongoDB reports duplicate values as a duplicate key
			// error, FerretDB as an internal error.
			return fmt.Errorf("%s: documents share a %s: %s", op, ix.field, msg)
		}
		return fmt.Errorf("%s: %s", op, msg)
	}
	return s.ensureAttemptsIndex(ctx)
}

// hasUniqueIndex reports whether coll has a unique index on field alone.
func hasUniqueIndex(ctx context.Context, coll *mongodrv.Collection, field string) (bool, error) {
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return false, err
	}
	for _, spec := range specs {
		keys, err := spec.KeysDocument.Elements()
		if err != nil || len(keys) != 1 || keys[0].Key() != field {
			continue
		}
		if spec.Unique != nil && *spec.Unique {
			return true, nil
		}
	}
	return false, nil
}

// opContext bounds one operation by the store's timeout.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// nowMS is the store's clock truncated to the stored precision.
func (s *Store) nowMS() time.Time { return store.Truncate(s.now()) }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	return s.wrapErr("ping mongo", s.client.Ping(ctx, nil))
}

// Close disconnects from the server; the Store is unusable afterwards.
func (s *Store) Close(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err := s.client.Disconnect(ctx)
	if errors.Is(err, mongodrv.ErrClientDisconnected) {
		return nil
	}
	return s.wrapErr("close mongo", err)
}

// Database returns the name of the database the store uses.
func (s *Store) Database() string { return s.db.Name() }

// sleep waits for a random duration below base<<attempt (capped), or until
// ctx is done.
func sleep(ctx context.Context, attempt int) error {
	const base, maxWait = 2 * time.Millisecond, 100 * time.Millisecond
	d := min(base<<attempt, maxWait)
	t := time.NewTimer(rand.N(d) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// uriDatabase returns the database of a connection string's path, or "".
func uriDatabase(uri string) string {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return ""
	}
	rest = rest[hostsStart(rest):]
	i := strings.IndexAny(rest, "/?")
	if i < 0 || rest[i] == '?' {
		return ""
	}
	path, _, _ := strings.Cut(rest[i+1:], "?")
	return unescape(path)
}
