package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/regctl/regctl/internal/store"
)

// UserSource is what the token server needs from a store to authenticate.
type UserSource interface {
	GetUser(ctx context.Context, username string) (*store.User, error)
}

var (
	errBadCredentials = errors.New("invalid credentials")
	errUnknownUser    = errors.New("unknown user")
)

// credential is a verified password, remembered as an HMAC under a
// per-process key (never the password itself), valid only while the user's
// stored hash is the one it was verified against.
type credential struct {
	mac          [sha256.Size]byte
	passwordHash string
	verifiedAt   time.Time
}

// cachedUser is a user as read from the store at fetchedAt.
type cachedUser struct {
	user      *store.User
	fetchedAt time.Time
}

// authenticator checks passwords against the store. The hot path (a
// credential verified recently) costs one HMAC and no store round trip:
//   - users are cached for at most the reload interval, which bounds how
//     stale a user's status, labels and grants can be;
//   - verified credentials are cached for credTTL, keyed by user and
//     invalidated when the stored password hash changes.
//
// Only a correct password of an active user takes the fast path. Every
// other answer costs one bcrypt comparison at the cost the store's users
// have: a wrong password (whether or not the user has a cached
// credential), an unknown user (compared against a dummy hash), and a
// disabled or expired user (compared, then refused). A failed login
// therefore takes as long whatever the reason, and response times do not
// tell which accounts exist. bcrypt runs at most GOMAXPROCS at a time,
// and one client address at most GOMAXPROCS-1 of them (at least one), so
// a client that floods the server always leaves a core for the others
// (fairSem).
type authenticator struct {
	users   UserSource
	userTTL time.Duration
	cache   *lru.Cache[string, cachedUser]
	creds   *lru.Cache[string, credential]
	now     func() time.Time
	group   singleflight.Group
	macKey  []byte
	bcrypt  *fairSem[netip.Prefix]
	dummy   *dummyHashes
	timeout time.Duration
	stats   authStats // for metrics (metrics.go)
}

const (
	userCacheSize = 16384
	credCacheSize = 16384
	credTTL       = 15 * time.Minute
	bcryptMaxLen  = 72
)

// newAuthenticator returns an authenticator; cost is the bcrypt cost the
// dummy hash for unknown users has until users have been read.
func newAuthenticator(users UserSource, userTTL, timeout time.Duration, cost int, now func() time.Time) *authenticator {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot happen on supported platforms
	}
	cache, _ := lru.New[string, cachedUser](userCacheSize)
	creds, _ := lru.New[string, credential](credCacheSize)
	return &authenticator{
		users:   users,
		userTTL: userTTL,
		cache:   cache,
		creds:   creds,
		now:     now,
		macKey:  key,
		bcrypt:  newFairSem[netip.Prefix](runtime.GOMAXPROCS(0), max(1, runtime.GOMAXPROCS(0)-1)),
		dummy:   newDummyHashes(cost),
		timeout: timeout,
	}
}

// dummyHashes are hashes of nobody's password, compared for unknown users.
// Their cost follows the users read from the store: the most common cost
// among them, or the configured default before any was read. So an
// unknown user costs what a typical known one does.
type dummyHashes struct {
	mu     sync.Mutex
	seen   [bcrypt.MaxCost + 1]uint64 // users read from the store, by cost
	cost   int
	hashes map[int][]byte
}

func newDummyHashes(cost int) *dummyHashes {
	return &dummyHashes{cost: cost, hashes: make(map[int][]byte)}
}

// observe counts a user's password hash.
func (d *dummyHashes) observe(hash string) {
	c, err := bcrypt.Cost([]byte(hash))
	if err != nil || c < bcrypt.MinCost || c > bcrypt.MaxCost {
		return
	}
	d.mu.Lock()
	d.seen[c]++
	if n, m := d.seen[c], d.seen[d.cost]; n > m || (n == m && c > d.cost) {
		d.cost = c
	}
	d.mu.Unlock()
}

// compare spends what comparing password with a known user's hash would:
// it compares with the dummy hash of the current cost, or, the first time
// that cost is needed, makes that hash, which costs the same.
func (d *dummyHashes) compare(password []byte) {
	d.mu.Lock()
	c := d.cost
	h := d.hashes[c]
	d.mu.Unlock()
	if h != nil {
		_ = bcrypt.CompareHashAndPassword(h, password)
		return
	}
	h, err := bcrypt.GenerateFromPassword([]byte("regctl-dummy-password"), c)
	if err != nil {
		return // cannot happen for a cost in range
	}
	d.mu.Lock()
	d.hashes[c] = h
	d.mu.Unlock()
}

func (a *authenticator) mac(username, password string) [sha256.Size]byte {
	if len(password) > bcryptMaxLen {
		password = password[:bcryptMaxLen]
	}
	m := hmac.New(sha256.New, a.macKey)
	m.Write([]byte(username))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// user returns the user, from the cache if it is younger than the reload
// interval. Concurrent misses for one name share one store query.
//
// A user asked for again after half the interval is fetched anew in the
// background while the cached copy (still within the bound) answers, so
// the users who keep asking, as CI runners do, never wait for the store;
// a copy is never used past the interval, so the staleness bound holds.
func (a *authenticator) user(ctx context.Context, username string) (*store.User, error) {
	if c, ok := a.cache.Get(username); ok {
		age := a.now().Sub(c.fetchedAt)
		if age < a.userTTL {
			if age >= a.userTTL/2 {
				a.group.DoChan(username, func() (any, error) { return a.fetch(context.Background(), username) })
			}
			return c.user, nil
		}
	}
	v, err, _ := a.group.Do(username, func() (any, error) { return a.fetch(ctx, username) })
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, errUnknownUser
		}
		if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %v", store.ErrUnavailable, err) //nolint:errorlint // deliberately one sentinel: callers classify by store.ErrUnavailable; the cause stays text so it cannot match their other checks (context errors)
		}
		return nil, err
	}
	return v.(*store.User), nil
}

// fetch reads a user from the store into the cache, or drops it from the
// cache when the store says it is gone. It is not cancelled with the
// request that started it: other requests may be waiting for it.
func (a *authenticator) fetch(ctx context.Context, username string) (*store.User, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	fetchedAt := a.now()
	u, err := a.users.GetUser(ctx, username)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			a.cache.Remove(username)
		}
		return nil, err
	}
	a.dummy.observe(u.PasswordHash)
	a.cache.Add(username, cachedUser{user: u, fetchedAt: fetchedAt})
	return u, nil
}

// cached returns the user if the password is an active user's
// recently verified one: one HMAC, no bcrypt. false means nothing was
// decided (the slow path must run); an error wraps store.ErrUnavailable.
func (a *authenticator) cached(ctx context.Context, username, password string, now time.Time) (*store.User, bool, error) {
	u, err := a.user(ctx, username)
	if errors.Is(err, errUnknownUser) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	c, ok := a.creds.Get(username)
	if !ok || u.Status(now) != store.StatusActive || c.passwordHash != u.PasswordHash || now.Sub(c.verifiedAt) >= credTTL {
		return nil, false, nil
	}
	mac := a.mac(username, password)
	if !hmac.Equal(c.mac[:], mac[:]) {
		return nil, false, nil
	}
	a.stats.cacheHits.Add(1)
	return u, true, nil
}

// authenticate verifies client's password for username at now. It
// returns the user and whether the cached credential answered, or
// errBadCredentials or errUnknownUser (both mean 401), or an error
// wrapping store.ErrUnavailable. A disabled or expired user is returned
// without error once the password was checked; the caller refuses it.
func (a *authenticator) authenticate(ctx context.Context, client netip.Prefix, username, password string, now time.Time) (*store.User, bool, error) {
	u, err := a.user(ctx, username)
	if errors.Is(err, errUnknownUser) {
		_ = a.compare(ctx, client, nil, password)
		return nil, false, err
	}
	if err != nil {
		return nil, false, err
	}
	if cu, ok, err := a.cached(ctx, username, password, now); ok || err != nil {
		return cu, ok, err
	}
	if err := a.compare(ctx, client, []byte(u.PasswordHash), password); err != nil {
		return nil, false, err
	}
	if u.Status(now) == store.StatusActive {
		a.creds.Add(username, credential{mac: a.mac(username, password), passwordHash: u.PasswordHash, verifiedAt: now})
	}
	return u, false, nil
}

// prune drops the cached users fetched a TTL or more ago. Such an entry is
// never used again (the next lookup fetches the user anew), but the LRU
// would keep it until userCacheSize newer ones push it out: with many
// users, about 1 KiB each for hours. Pruning keeps only the users active
// within the last TTL. A user re-cached between Peek and Remove is merely
// fetched again.
func (a *authenticator) prune() {
	now := a.now()
	for _, k := range a.cache.Keys() {
		if c, ok := a.cache.Peek(k); ok && now.Sub(c.fetchedAt) >= a.userTTL {
			a.cache.Remove(k)
		}
	}
}

// pruneEvery prunes the user cache every interval until ctx ends.
func (a *authenticator) pruneEvery(ctx context.Context, interval time.Duration) {
	every(ctx, interval, a.prune)
}

// compare runs bcrypt for client, waiting for its turn at a slot; a nil
// hash compares with the dummy hash.
func (a *authenticator) compare(ctx context.Context, client netip.Prefix, hash []byte, password string) error {
	if err := a.bcrypt.acquire(ctx, client); err != nil {
		return err
	}
	defer a.bcrypt.release(client)
	a.stats.bcrypts.Add(1)
	pw := []byte(password[:min(len(password), bcryptMaxLen)])
	if hash == nil {
		a.dummy.compare(pw)
		return errBadCredentials
	}
	if err := bcrypt.CompareHashAndPassword(hash, pw); err != nil {
		return errBadCredentials
	}
	return nil
}
