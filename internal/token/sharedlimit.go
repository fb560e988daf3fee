package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/store"
)

// Shared limits: the login limits held across every token server on one
// store (replicas on one host sharing its SQLite file, hosts sharing a
// MongoDB-wire store), which with only the local buckets would multiply
// with the number of servers.
//
// The local buckets (ratelimit.go) stay the first stage and the fast
// path: a cached login, which cannot reach bcrypt, never touches the
// store, and an attempt the local buckets refuse is refused at once. An
// attempt they admit, which is about to cost bcrypt, is then recorded in
// the store's attempt log (store.AttemptLog) under its client and its
// account, in one call that returns how many unexpired records each key
// has. Records live for the limit's window, Burst/Rate (two minutes for
// the client default of 10/min with a burst of 20), so the store holds
// the limit as a sliding window: at most Burst attempts per client in any
// window, the same burst and long-run rate as the local bucket. As
// locally, a failure keeps its record and any other outcome removes it,
// so successful logins use up nothing.
//
// An attempt over the client's shared limit gets 429. Over the account's,
// it gets 429 unless the local not-a-lockout rules exempt its client
// (trusted for the account, or clean and probing). Either way its
// records are removed again, and the local bucket of the refused key is
// blocked for one window: this server then refuses that key at once,
// without the store, and its cached logins for it are refused too, so a
// correct cached password cannot be told from a wrong one while limited.
//
// Slack: the store's counts are exact under concurrency (the i-th record
// added under a key counts at least i, from any number of servers), so
// of a client's attempts at most Burst per window reach bcrypt, however
// they are spread over servers, apart from:
//   - clock skew between servers, which moves window edges by the skew;
//   - one attempt per server per window while the client is limited:
//     the first attempt that a server, its local bucket not yet blocked,
//     sends to the store and is refused. It does not reach bcrypt, but
//     if it is the right password and this server has it cached, the
//     cached login answered it before the store was asked;
//   - for an attacked account, each server's own trust and clean
//     records: a client clean on several servers probes on each.
//
// Store outage: an attempt that cannot be recorded is refused with 503
// and no bcrypt (fail closed), as requests are when users cannot be
// read. Cached logins and refresh-token grants do not touch the attempt
// log, and keep answering while their users are cached. Removing a record
// that failed is only logged: the attempt keeps counting until its window
// ends, which errs on the strict side.
type sharedLimits struct {
	attempts store.AttemptLog
	l        *failLimiter
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time
}

// attemptsPruneInterval is how often each server deletes expired
// records: the backends have no TTL index to do it.
const attemptsPruneInterval = time.Minute

// window is how long a shared record counts: the time a full bucket takes
// to refill.
func window(l config.FailLimit) time.Duration { return time.Duration(l.Burst) * l.Interval() }

// sharedAccountKey names an account in the attempt log: a hash, so the
// log keeps no typed names (a password typed into the user field, say),
// and every key has the same short length. Unlike the local buckets' key
// it has no per-process seed: every server must name an account alike.
func sharedAccountKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "account " + hex.EncodeToString(sum[:16])
}

// admit records an attempt the local limits admitted, or refuses it: a
// *rateLimitError, or an error wrapping store.ErrUnavailable. On refusal
// the caller releases the local admission.
func (g *sharedLimits) admit(ctx context.Context, adm *admission, username string, now time.Time) error {
	l := g.l
	as := make([]store.Attempt, 0, 2)
	if l.ip != nil {
		as = append(as, store.Attempt{Key: "ip " + adm.client.String(), ExpiresAt: now.Add(window(l.ip.limit))})
	}
	if l.account != nil {
		as = append(as, store.Attempt{Key: sharedAccountKey(username), ExpiresAt: now.Add(window(l.account.limit))})
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ids, counts, err := g.attempts.AddAttempts(ctx, now, as)
	if err != nil {
		return fmt.Errorf("%w: login limits: %v", store.ErrUnavailable, err) //nolint:errorlint // one sentinel, as in server.go
	}
	adm.shared = ids
	i := 0
	if l.ip != nil {
		if counts[0] > l.ip.limit.Burst {
			w := window(l.ip.limit)
			g.refuse(ctx, adm)
			l.ip.block(adm.client, now, w)
			l.limitedIP.Add(1)
			return &rateLimitError{scope: "ip", retryAfter: w}
		}
		i++
	}
	if l.account != nil && counts[i] > l.account.limit.Burst && !adm.probe && !adm.trusted && !l.exempt(adm, now) {
		w := window(l.account.limit)
		g.refuse(ctx, adm)
		l.account.block(adm.account, now, w)
		l.limitedAccount.Add(1)
		return &rateLimitError{scope: "account", retryAfter: w}
	}
	return nil
}

// refuse removes the records of an attempt refused after they were added.
func (g *sharedLimits) refuse(ctx context.Context, adm *admission) {
	g.remove(ctx, adm.shared)
	adm.shared = nil
}

// settle ends an attempt admitted by admit: a failure keeps its records,
// any other outcome removes them.
func (g *sharedLimits) settle(ctx context.Context, adm *admission, failed bool) {
	if failed || len(adm.shared) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	g.remove(ctx, adm.shared)
	adm.shared = nil
}

func (g *sharedLimits) remove(ctx context.Context, ids []string) {
	if err := g.attempts.RemoveAttempts(ctx, ids); err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "login limits: could not give back an attempt; it counts until its window ends",
			slog.String("error", err.Error()))
	}
}

// prune deletes the expired records.
func (g *sharedLimits) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	if err := g.attempts.PruneAttempts(ctx, g.now()); err != nil {
		g.log.LogAttrs(ctx, slog.LevelWarn, "login limits: could not prune expired attempts", slog.String("error", err.Error()))
	}
}
