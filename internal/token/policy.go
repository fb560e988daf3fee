package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/regctl/regctl/internal/acl"
)

// RuleSource is what the token server needs from a store for rules.
type RuleSource interface {
	ListRules(ctx context.Context) ([]acl.Rule, error)
}

// rulesVersioner is implemented by a RuleSource that can tell cheaply
// whether its rules changed (the SQLite store's RulesVersion, a counter
// that moves on every change). The loader then lists and compiles the
// rules only when the version moved; otherwise a reload is one small
// query, which still proves that the store answers.
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
	prev := l.state.Load()
	var version int64
	vs, versioned := l.rules.(rulesVersioner)
	var err error
	if versioned {
		// Read before listing: a change made in between is listed now
		// and listed again at the next reload, never missed.
		version, err = vs.RulesVersion(ctx)
		if err == nil && prev != nil && prev.err == nil && prev.versioned && prev.version == version {
			l.state.Store(&policyState{policy: prev.policy, loadedAt: start, version: version, versioned: true})
			return nil
		}
	}
	var rules []acl.Rule
	if err == nil {
		rules, err = l.rules.ListRules(ctx)
	}
	var p *acl.Policy
	if err == nil {
		p, err = acl.Compile(rules)
	}
	if err != nil {
		l.state.Store(&policyState{err: err, loadedAt: start})
		if prev == nil || prev.err == nil || prev.err.Error() != err.Error() {
			l.log.Error("rules reload failed; token requests fail until it succeeds", "err", err)
		}
		return err
	}
	l.state.Store(&policyState{policy: p, loadedAt: start, version: version, versioned: versioned})
	if prev == nil || prev.err != nil {
		l.log.Info("rules loaded", "rules", p.Len())
	}
	return nil
}

// run reloads until ctx ends.
func (l *policyLoader) run(ctx context.Context) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = l.reload(ctx)
		}
	}
}
