package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// RuleSource is what the token server needs from a store for rules.
type RuleSource interface {
	ListRules(ctx context.Context) ([]acl.Rule, error)
}

// A RuleSource may also tell what changed, and the loader then does less:
//
//   - store.RuleChangeSource (SQLite): a reload reads only the rules
//     changed since the last one and recompiles only those
//     (acl.Policy.Update); when nothing changed it is one small query;
//   - rulesVersioner (MongoDB): a value that moves when the rules may have
//     changed, compared for equality; the loader lists and compiles every
//     rule only when it moved.
//
// Either way the query proves that the store answers.
type rulesVersioner interface {
	RulesVersion(ctx context.Context) (int64, error)
}

// policyState is one reload's outcome. A failed reload replaces the policy
// with nil: the server fails closed rather than deciding on rules it can no
// longer confirm.
type policyState struct {
	policy    *acl.Policy
	err       error
	loadedAt  time.Time
	version   int64 // the source's rules version, when versioned
	versioned bool
	cursor    store.RuleCursor // how far the change feed was read, when fed
	fed       bool
}

// policyLoader reloads the rules every interval. It is also the server's
// store health check: a failed reload makes token requests fail with 503
// until the next successful one.
type policyLoader struct {
	rules    RuleSource
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger
	state    atomic.Pointer[policyState]
}

var errNotLoaded = errors.New("rules not loaded yet")

func (l *policyLoader) current() (*acl.Policy, error) {
	s := l.state.Load()
	if s == nil {
		return nil, errNotLoaded
	}
	if s.err != nil {
		return nil, s.err
	}
	// A reload that hangs must not leave an old policy in force past the
	// staleness bound.
	if age := l.now().Sub(s.loadedAt); age > 2*l.interval+l.timeout {
		return nil, fmt.Errorf("rules are %s old (reload interval %s)", age.Round(time.Millisecond), l.interval)
	}
	return s.policy, nil
}

func (l *policyLoader) reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	start := l.now()
	last := l.state.Load()
	prev := last
	if prev != nil && prev.err != nil {
		prev = nil // start afresh after a failure
	}
	next := &policyState{loadedAt: start}
	var err error
	if feed, ok := l.rules.(store.RuleChangeSource); ok {
		err = l.reloadFed(ctx, feed, prev, next)
	} else {
		err = l.reloadListed(ctx, prev, next)
	}
	if err != nil {
		l.state.Store(&policyState{err: err, loadedAt: start})
		if last == nil || last.err == nil || last.err.Error() != err.Error() {
			l.log.Error("rules reload failed; token requests fail until it succeeds", "err", err)
		}
		return err
	}
	l.state.Store(next)
	if prev == nil {
		l.log.Info("rules loaded", "rules", next.policy.Len())
	}
	return nil
}

// reloadFed applies the changes since prev's cursor.
func (l *policyLoader) reloadFed(ctx context.Context, feed store.RuleChangeSource, prev, next *policyState) error {
	var since store.RuleCursor
	if prev != nil && prev.fed {
		since = prev.cursor
	}
	ch, err := feed.RuleChangesSince(ctx, since)
	if err != nil {
		return err
	}
	next.fed, next.cursor = true, ch.Cursor
	switch {
	case prev != nil && prev.fed && ch.Unchanged(since):
		next.policy = prev.policy
	case ch.Full || prev == nil || !prev.fed:
		next.policy, err = acl.Compile(ch.Rules)
	default:
		next.policy, err = prev.policy.Update(ch.Rules, ch.Removed)
	}
	return err
}

// reloadListed lists and compiles every rule, unless the source's version
// says nothing changed since prev.
func (l *policyLoader) reloadListed(ctx context.Context, prev, next *policyState) error {
	if vs, ok := l.rules.(rulesVersioner); ok {
		// Read before listing: a change made in between is listed now
		// and listed again at the next reload, never missed.
		version, err := vs.RulesVersion(ctx)
		if err != nil {
			return err
		}
		next.version, next.versioned = version, true
		if prev != nil && prev.versioned && prev.version == version {
			next.policy = prev.policy
			return nil
		}
	}
	rules, err := l.rules.ListRules(ctx)
	if err != nil {
		return err
	}
	next.policy, err = acl.Compile(rules)
	return err
}

// run reloads until ctx ends.
func (l *policyLoader) run(ctx context.Context) {
	every(ctx, l.interval, func() { _ = l.reload(ctx) })
}
