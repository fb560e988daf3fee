package token

import (
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/regctl/regctl/internal/config"
)

// Brute-force defence: token buckets of password attempts, one per client
// address and one per account name, in bounded LRUs.
//
// Only password requests (GET with Basic auth, POST grant_type=password)
// are limited and counted: they are what an attacker guesses with and what
// costs bcrypt. Refresh tokens are HMAC-signed and cannot be guessed, and
// anonymous requests authenticate nothing. A limited request is answered
// 429 with Retry-After before the store is asked and before any bcrypt.
//
// An attempt takes its token when it starts, before authentication, so
// attempts in flight count: of any number of parallel guesses from a new
// address, at most the burst reaches bcrypt. When the attempt ends, a
// failed authentication keeps the token spent; any other outcome gives it
// back, so successful logins never use up a limit.
//
//   - Per client (strict). With the client's bucket empty every password
//     request from it gets 429, whatever the password: a correct answer
//     must not be told apart from a wrong one while limited, or the limit
//     would be an oracle that guesses at full speed. IPv6 clients are
//     keyed by their /64, which one host usually owns whole.
//   - Per account (not a lockout). An attempt also takes a token from the
//     requested account name's bucket (existing or not, so a 429 does not
//     reveal which accounts exist). With it empty, the account is under
//     attack, and a password request for it is admitted only from a client
//     that is not part of the attack: one that authenticated as this
//     account within TrustedPairTTL, or, one request at a time, one with no
//     failed authentication within CleanAfter. Everyone else gets 429. So
//     an attacker spread over many addresses gets about one guess per
//     address per CleanAfter, while the account's owner logs in at once
//     from anywhere it has no failures.
//
// Buckets refill at their rate, so no limit is permanent. A bucket that is
// full again, with nothing in flight and no failure on record, is dropped,
// so the tables hold only clients and accounts with recent attempts.
type failLimiter struct {
	ip      *bucketSet[netip.Prefix]
	account *bucketSet[uint64]
	trusted *lru.Cache[trustKey, time.Time]
	seed    maphash.Seed

	limitedIP, limitedAccount atomic.Uint64 // 429s, for metrics
}

const (
	// CleanAfter is how long after its last failed authentication a client
	// counts as part of an attack on an account.
	CleanAfter = 15 * time.Minute
	// TrustedPairTTL is how long a client that authenticated as an account
	// may keep doing so while that account is under attack.
	TrustedPairTTL = 24 * time.Hour

	bucketCacheSize  = 65536
	trustedCacheSize = 65536
)

// bucketSet is one kind of bucket (by client or by account) in an LRU.
type bucketSet[K comparable] struct {
	limit config.FailLimit
	cache *lru.Cache[K, *bucket]
}

// bucket is one key's token bucket of password attempts, kept as the
// instant it will be full again (GCRA): whole nanoseconds, so refills do
// not drift. Attempts are settled at the time they end, so waiting for
// bcrypt earns no refill; a clock set back moves the bucket's times with
// it (as golang.org/x/time/rate does), so it neither empties nor fills.
type bucket struct {
	mu       sync.Mutex
	seen     time.Time // the latest time the bucket was used at
	full     time.Time // the bucket is full from this instant on
	held     int       // tokens taken by attempts still in flight
	probing  int       // requests admitted to an attacked account as a clean client
	lastFail time.Time // zero: none
	dead     bool      // removed from its set: get a new one
}

func newBucketSet[K comparable](l config.FailLimit) *bucketSet[K] {
	if l.Off() {
		return nil
	}
	c, _ := lru.New[K, *bucket](bucketCacheSize)
	return &bucketSet[K]{limit: l, cache: c}
}

// lock returns the key's bucket at now, created full, with its mutex held.
func (bs *bucketSet[K]) lock(k K, now time.Time) *bucket {
	for {
		b, ok := bs.cache.Get(k)
		if !ok {
			nb := &bucket{}
			if prev, found, _ := bs.cache.PeekOrAdd(k, nb); found {
				b = prev
			} else {
				b = nb
			}
		}
		b.mu.Lock()
		if !b.dead {
			if now.Before(b.seen) {
				b.full = b.full.Add(now.Sub(b.seen))
			}
			b.seen = now
			return b
		}
		b.mu.Unlock() // dropped since we found it: it is no longer in the cache
	}
}

// unlock releases b, first dropping it from the set when it holds nothing
// worth keeping: full, nothing in flight, no failure on record.
func (bs *bucketSet[K]) unlock(k K, b *bucket, now time.Time) {
	if !b.full.After(now) && b.held == 0 && b.probing == 0 && b.lastFail.IsZero() {
		b.dead = true
		bs.cache.Remove(k) // under b.mu: a getter that finds b sees dead
	}
	b.mu.Unlock()
}

// debt is how far below full b is at now, as refill time.
func (b *bucket) debt(now time.Time) time.Duration { return max(0, b.full.Sub(now)) }

// spend takes a token at now if there is one.
func (b *bucket) spend(l config.FailLimit, now time.Time) bool {
	per := l.Interval()
	debt := b.debt(now)
	if debt > time.Duration(l.Burst-1)*per {
		return false
	}
	b.full = now.Add(debt + per)
	return true
}

// take spends a token for an attempt that starts, if there is one.
func (b *bucket) take(l config.FailLimit, now time.Time) bool {
	if !b.spend(l, now) {
		return false
	}
	b.held++
	return true
}

// retryAfter is how long until a token is available, at least a second.
func (b *bucket) retryAfter(l config.FailLimit, now time.Time) time.Duration {
	return max(time.Second, b.debt(now)-time.Duration(l.Burst-1)*l.Interval())
}

// end settles one attempt on b: the token it took (if taken) is given
// back unless it failed; a failure that took none spends one if there is
// one. Call with b.mu held.
func (b *bucket) end(l config.FailLimit, taken, failed bool, now time.Time) {
	switch {
	case taken:
		b.held--
		if !failed {
			b.full = b.full.Add(-l.Interval())
		}
	case failed:
		b.spend(l, now)
	}
}

// trustKey is an account that a client authenticated as.
type trustKey struct {
	account uint64
	client  netip.Prefix
}

func newFailLimiter(ipLimit, accountLimit config.FailLimit) *failLimiter {
	l := &failLimiter{
		ip:      newBucketSet[netip.Prefix](ipLimit),
		account: newBucketSet[uint64](accountLimit),
		seed:    maphash.MakeSeed(),
	}
	if l.account != nil {
		l.trusted, _ = lru.New[trustKey, time.Time](trustedCacheSize)
	}
	return l
}

// clientKey is the bucket key of a client address: the address, or its /64
// for IPv6.
func clientKey(a netip.Addr) netip.Prefix {
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p
	}
	p, _ := a.Prefix(a.BitLen()) // the zero Addr gives the zero Prefix: one shared bucket
	return p
}

// accountKey is a fixed-size key for an account name, which may be up to
// 4 KiB long: a 64-bit hash with a per-process seed.
func (l *failLimiter) accountKey(name string) uint64 { return maphash.String(l.seed, name) }

// open reports whether a password attempt by client for username would be
// admitted on the buckets' tokens alone, without taking any: the check for
// logins that cannot reach bcrypt (a cached credential). It creates
// nothing, so such logins leave the tables as they are.
func (l *failLimiter) open(client netip.Prefix, username string, now time.Time) bool {
	if l == nil {
		return true
	}
	return l.ip.hasToken(client, now) && (l.account == nil || l.account.hasToken(l.accountKey(username), now))
}

// hasToken reports whether k's bucket has a token at now; a key without a
// bucket has a full one.
func (bs *bucketSet[K]) hasToken(k K, now time.Time) bool {
	if bs == nil {
		return true
	}
	b, ok := bs.cache.Peek(k)
	if !ok {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.seen) {
		now = b.seen // as lock would see it: a clock set back changes nothing
	}
	return b.dead || b.debt(now) <= time.Duration(bs.limit.Burst-1)*bs.limit.Interval()
}

// admission is what admit took for one password attempt; settle gives it
// back or keeps it.
type admission struct {
	client   netip.Prefix
	account  uint64
	ipTaken  bool     // a token of the client's bucket
	accTaken bool     // a token of the account's bucket
	probe    bool     // admitted to an attacked account as a clean client
	trusted  bool     // admitted to an attacked account as a trusted client
	suspect  bool     // the account had failures on record: remember who gets in
	shared   []string // the attempt's records in the store (sharedlimit.go)
}

// rateLimitError is a request refused by a limit: 429.
type rateLimitError struct {
	scope      string // "ip" or "account"
	retryAfter time.Duration
}

func (e *rateLimitError) Error() string {
	if e.scope == "ip" {
		return "too many failed authentications from this client"
	}
	return "too many failed authentications for this account"
}

// admit decides whether a password attempt by client for username may go
// on to authentication, and takes its tokens; it returns why not. Every
// admitted attempt must be settled.
func (l *failLimiter) admit(adm *admission, client netip.Prefix, username string, now time.Time) *rateLimitError {
	adm.client = client
	if l.ip != nil {
		b := l.ip.lock(client, now)
		if !b.take(l.ip.limit, now) {
			ra := b.retryAfter(l.ip.limit, now)
			l.ip.unlock(client, b, now)
			l.limitedIP.Add(1)
			return &rateLimitError{scope: "ip", retryAfter: ra}
		}
		l.ip.unlock(client, b, now)
		adm.ipTaken = true
	}
	if l.account == nil {
		return nil
	}
	adm.account = l.accountKey(username)
	ab := l.account.lock(adm.account, now)
	adm.suspect = !ab.lastFail.IsZero()
	if ab.take(l.account.limit, now) {
		l.account.unlock(adm.account, ab, now)
		adm.accTaken = true
		return nil
	}
	ra := ab.retryAfter(l.account.limit, now)
	l.account.unlock(adm.account, ab, now)
	if l.exempt(adm, now) {
		return nil
	}
	if adm.ipTaken {
		b := l.ip.lock(client, now)
		b.end(l.ip.limit, true, false, now)
		l.ip.unlock(client, b, now)
		adm.ipTaken = false
	}
	l.limitedAccount.Add(1)
	return &rateLimitError{scope: "account", retryAfter: ra}
}

// exempt reports whether adm's client may try an attacked account all
// the same: it authenticated as the account within TrustedPairTTL, or it
// is clean and probes, one request at a time.
func (l *failLimiter) exempt(adm *admission, now time.Time) bool {
	if t, ok := l.trusted.Peek(trustKey{adm.account, adm.client}); ok && now.Sub(t) < TrustedPairTTL {
		adm.trusted = true
		return true
	}
	if l.ip == nil {
		return false
	}
	b := l.ip.lock(adm.client, now)
	clean := b.probing == 0 && (b.lastFail.IsZero() || now.Sub(b.lastFail) >= CleanAfter)
	if clean {
		b.probing++
	}
	l.ip.unlock(adm.client, b, now)
	adm.probe = clean
	return clean
}

// release ends an admitted attempt that was refused after all (by the
// shared limits): its tokens are given back, and nothing is recorded.
func (l *failLimiter) release(adm *admission, now time.Time) {
	if adm.ipTaken || adm.probe {
		b := l.ip.lock(adm.client, now)
		b.end(l.ip.limit, adm.ipTaken, false, now)
		if adm.probe {
			b.probing--
		}
		l.ip.unlock(adm.client, b, now)
	}
	if adm.accTaken {
		b := l.account.lock(adm.account, now)
		b.end(l.account.limit, true, false, now)
		l.account.unlock(adm.account, b, now)
	}
	adm.ipTaken, adm.accTaken, adm.probe = false, false, false
}

// block empties k's bucket for d from now: it refuses every attempt
// until then, and fills at its rate afterwards.
func (bs *bucketSet[K]) block(k K, now time.Time, d time.Duration) {
	b := bs.lock(k, now)
	if until := now.Add(d + time.Duration(bs.limit.Burst-1)*bs.limit.Interval()); until.After(b.full) {
		b.full = until
	}
	bs.unlock(k, b, now)
}

// settle ends an admitted attempt at now. A failed authentication keeps
// its tokens spent and is recorded against the client and the account;
// any other outcome gives the tokens back, and a success for an account
// with failures on record remembers the client as trusted for it.
func (l *failLimiter) settle(adm *admission, failed bool, now time.Time) {
	if adm.ipTaken || adm.probe {
		b := l.ip.lock(adm.client, now)
		b.end(l.ip.limit, adm.ipTaken, failed, now)
		if adm.probe {
			b.probing--
		}
		if failed {
			b.lastFail = now
		}
		l.ip.unlock(adm.client, b, now)
	}
	if l.account == nil {
		return
	}
	if adm.accTaken || failed {
		b := l.account.lock(adm.account, now)
		b.end(l.account.limit, adm.accTaken, failed, now)
		if failed {
			b.lastFail = now
		}
		l.account.unlock(adm.account, b, now)
	}
	if !failed && (adm.suspect || !adm.accTaken) {
		// Trust is recorded only for accounts with failures on record,
		// so the hot path costs nothing here.
		k := trustKey{adm.account, adm.client}
		if t, ok := l.trusted.Peek(k); !ok || now.Sub(t) > TrustedPairTTL/2 {
			l.trusted.Add(k, now)
		}
	}
}

// writeRateLimited answers 429 with Retry-After in whole seconds.
func writeRateLimited(w http.ResponseWriter, e *rateLimitError) {
	secs := int(math.Ceil(e.retryAfter.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
	writeJSON(w, http.StatusTooManyRequests, map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": "too many failed authentications; retry later",
	})
}
