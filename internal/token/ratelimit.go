package token

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Brute-force defence: token buckets of FAILED authentications, one per
// client address and one per account name, in bounded LRUs.
//
// Only password requests (GET with Basic auth, POST grant_type=password)
// are limited and counted: they are what an attacker guesses with and what
// costs bcrypt. Refresh tokens are HMAC-signed and cannot be guessed, and
// anonymous requests authenticate nothing. A limited request is answered
// 429 with Retry-After before the store is asked and before any bcrypt.
//
//   - Per client (strict). Every 401 to a password request takes a token
//     from its client's bucket; with the bucket empty every password
//     request from that client gets 429, whatever the password: a correct
//     answer must not be told apart from a wrong one while limited, or the
//     limit would be an oracle that guesses at full speed. IPv6 clients are
//     keyed by their /64, which one host usually owns whole.
//   - Per account (not a lockout). Every 401 also takes a token from the
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
// Buckets refill at their rate, so no limit is permanent. The check and
// the recording of a failure are not one atomic step, so a client's first
// wave of concurrent requests may all reach bcrypt; after its first failure
// each of its requests holds a slot while it runs, which bounds the rest
// exactly.
type failLimiter struct {
	ip      *bucketSet[netip.Prefix]
	account *bucketSet[uint64]
	trusted *lru.Cache[trustKey, time.Time]
	seed    maphash.Seed

	limitedIP, limitedAccount atomic.Uint64 // 429s, for metrics
}

// FailLimit is a token bucket of failed authentications: Burst failures at
// once, refilled at Rate per second. A zero FailLimit is off.
type FailLimit struct {
	Rate  rate.Limit // tokens per second
	Burst int
}

// Limits applied unless configured otherwise (regctl serve --fail-limit-ip,
// --fail-limit-account).
var (
	DefaultFailLimitIP      = FailLimit{Rate: rate.Limit(10.0 / 60), Burst: 20}
	DefaultFailLimitAccount = FailLimit{Rate: rate.Limit(20.0 / 60), Burst: 60}
)

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

// Off reports whether the limit is disabled.
func (l FailLimit) Off() bool { return l.Rate <= 0 || l.Burst <= 0 }

// String renders the limit as ParseFailLimit reads it.
func (l FailLimit) String() string {
	if l.Off() {
		return "off"
	}
	perMin := float64(l.Rate) * 60
	if perMin == math.Trunc(perMin) {
		return fmt.Sprintf("%g/min,burst=%d", perMin, l.Burst)
	}
	return fmt.Sprintf("%g/h,burst=%d", float64(l.Rate)*3600, l.Burst)
}

// ParseFailLimit reads "N/UNIT[,burst=B]" (UNIT s, min or h, or a Go
// duration such as 30s; B defaults to 2N) or "off".
func ParseFailLimit(s string) (FailLimit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return FailLimit{}, nil
	}
	spec, burstSpec, hasBurst := strings.Cut(s, ",")
	num, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return FailLimit{}, fmt.Errorf("fail limit %q: want N/UNIT[,burst=B], e.g. 10/min,burst=20, or off", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return FailLimit{}, fmt.Errorf("fail limit %q: %q is not a positive number", s, num)
	}
	var per time.Duration
	switch u := strings.TrimSpace(unit); u {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	default:
		if per, err = time.ParseDuration(u); err != nil || per <= 0 {
			return FailLimit{}, fmt.Errorf("fail limit %q: unit %q is not s, min, h or a duration", s, u)
		}
	}
	l := FailLimit{Rate: rate.Limit(n / per.Seconds()), Burst: int(math.Ceil(2 * n))}
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burstSpec), "burst=")
		b, err := strconv.Atoi(v)
		if !ok || err != nil || b < 1 {
			return FailLimit{}, fmt.Errorf("fail limit %q: want burst=N with N ≥ 1 after the comma", s)
		}
		l.Burst = b
	}
	return l, nil
}

func (l FailLimit) validate(flag string) error {
	if l.Off() {
		return nil
	}
	if l.Burst > 1_000_000 || float64(l.Rate) > 1000 {
		return fmt.Errorf("%s %s is too large to limit anything", flag, l)
	}
	return nil
}

// bucketSet is one kind of bucket (by client or by account) in an LRU.
type bucketSet[K comparable] struct {
	limit FailLimit
	cache *lru.Cache[K, *bucket]
}

// bucket counts one key's failures.
type bucket struct {
	mu       sync.Mutex
	lim      *rate.Limiter
	inflight int       // admitted requests not yet finished
	probing  int       // requests admitted to an attacked account as a clean client
	lastFail time.Time // zero: none
}

func newBucketSet[K comparable](l FailLimit) *bucketSet[K] {
	if l.Off() {
		return nil
	}
	c, _ := lru.New[K, *bucket](bucketCacheSize)
	return &bucketSet[K]{limit: l, cache: c}
}

// peek returns the key's bucket, without creating it or changing the LRU
// order: the hot path (no failures on record) takes a read lock only.
func (bs *bucketSet[K]) peek(k K) *bucket {
	if bs == nil {
		return nil
	}
	b, _ := bs.cache.Peek(k)
	return b
}

// get returns the key's bucket, creating it full.
func (bs *bucketSet[K]) get(k K) *bucket {
	if b, ok := bs.cache.Get(k); ok {
		return b
	}
	nb := &bucket{lim: rate.NewLimiter(bs.limit.Rate, bs.limit.Burst)} // full
	if prev, ok, _ := bs.cache.PeekOrAdd(k, nb); ok {
		return prev
	}
	return nb
}

// available is what is left for new requests: the bucket's tokens less
// the requests already admitted on them. Call with b.mu held.
func (b *bucket) available(now time.Time) float64 {
	return b.lim.TokensAt(now) - float64(b.inflight)
}

// retryAfter is how long until one token is available, at least a second.
func (b *bucket) retryAfter(now time.Time) time.Duration {
	need := 1 - b.available(now)
	r := float64(b.lim.Limit())
	if need <= 0 || r <= 0 {
		return time.Second
	}
	return max(time.Second, time.Duration(need/r*float64(time.Second)))
}

// failed takes a token and records the failure time.
func (b *bucket) failed(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lim.AllowN(now, 1) // when empty (a race with the check) it stays empty
	b.lastFail = now
}

// trustKey is an account that a client authenticated as.
type trustKey struct {
	account uint64
	client  netip.Prefix
}

func newFailLimiter(ipLimit, accountLimit FailLimit) *failLimiter {
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

// admission is what admit reserved for one request; done releases it.
type admission struct {
	limited  bool // a password request: failures are counted
	client   netip.Prefix
	account  uint64
	ipSlot   *bucket // inflight held on the client's bucket
	accSlot  *bucket // inflight held on the account's bucket
	probe    *bucket // probing held on the client's bucket
	attacked bool    // the account's bucket was empty
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

// admit decides whether a password request may go on to authentication,
// and returns why not.
func (l *failLimiter) admit(adm *admission, g grant, username string, ip netip.Addr, now time.Time) *rateLimitError {
	if l == nil || (g != grantBasic && g != grantPassword) {
		return nil
	}
	adm.limited = true
	adm.client = clientKey(ip)
	ipb := l.ip.peek(adm.client)
	if ipb != nil {
		ipb.mu.Lock()
		if ipb.available(now) < 1 {
			ra := ipb.retryAfter(now)
			ipb.mu.Unlock()
			l.limitedIP.Add(1)
			return &rateLimitError{scope: "ip", retryAfter: ra}
		}
		ipb.inflight++
		ipb.mu.Unlock()
		adm.ipSlot = ipb
	}
	if l.account == nil {
		return nil
	}
	adm.account = l.accountKey(username)
	ab := l.account.peek(adm.account)
	if ab == nil {
		return nil
	}
	ab.mu.Lock()
	if ab.available(now) >= 1 {
		ab.inflight++
		ab.mu.Unlock()
		adm.accSlot = ab
		return nil
	}
	ra := ab.retryAfter(now)
	ab.mu.Unlock()
	adm.attacked = true
	if t, ok := l.trusted.Peek(trustKey{adm.account, adm.client}); ok && now.Sub(t) < TrustedPairTTL {
		return nil
	}
	// A clean client may probe, one request at a time.
	if ipb == nil && l.ip != nil {
		ipb = l.ip.get(adm.client)
	}
	if ipb != nil {
		ipb.mu.Lock()
		clean := ipb.probing == 0 && (ipb.lastFail.IsZero() || now.Sub(ipb.lastFail) >= CleanAfter)
		if clean {
			ipb.probing++
		}
		ipb.mu.Unlock()
		if clean {
			adm.probe = ipb
			return nil
		}
	}
	l.limitedAccount.Add(1)
	return &rateLimitError{scope: "account", retryAfter: ra}
}

// done releases what admit reserved and records the outcome: a failed
// authentication takes a token from both buckets; a success while the
// account is on record remembers the client as trusted for it.
func (l *failLimiter) done(adm *admission, status int, now time.Time) {
	if l == nil || !adm.limited {
		return
	}
	for _, b := range []*bucket{adm.ipSlot, adm.accSlot} {
		if b != nil {
			b.mu.Lock()
			b.inflight--
			b.mu.Unlock()
		}
	}
	if adm.probe != nil {
		adm.probe.mu.Lock()
		adm.probe.probing--
		adm.probe.mu.Unlock()
	}
	switch status {
	case http.StatusUnauthorized:
		if l.ip != nil {
			l.ip.get(adm.client).failed(now)
		}
		if l.account != nil {
			l.account.get(adm.account).failed(now)
		}
	case http.StatusOK:
		// Trust is recorded only for accounts with failures on record,
		// so the hot path costs nothing here.
		if l.account != nil && (adm.accSlot != nil || adm.attacked) {
			k := trustKey{adm.account, adm.client}
			if t, ok := l.trusted.Peek(k); !ok || now.Sub(t) > TrustedPairTTL/2 {
				l.trusted.Add(k, now)
			}
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

// limit runs the brute-force check before authentication. It answers 429
// and returns false when the request is refused.
func (s *Server) limit(w http.ResponseWriter, d *decision, req *tokenRequest) bool {
	le := s.limits.admit(&d.adm, req.grant, req.username, d.ip, d.now)
	if le == nil {
		return true
	}
	d.status, d.reason = http.StatusTooManyRequests, le.Error()
	writeRateLimited(w, le)
	return false
}
