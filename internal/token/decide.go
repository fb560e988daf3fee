package token

import (
	"net/netip"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// Decide is the token server's access decision, shared with `regctl acl
// explain` so that the two can never disagree. u is the authenticated user
// (nil for an anonymous request), service the server's service name, ip
// the client address (zero when unknown) and now the decision time.
//
// An account that is not active at now (store.User.Status) gets nothing:
// the server answers 401 before any grant or rule is consulted, and Decide
// returns no scopes with that status. Otherwise Decide returns the scopes
// that go into the token: policy p's decision (acl.Policy.Authorize) with
// the scopes that were granted nothing left out (Granted), and
// store.StatusActive. A nil p has no rules; grants still apply.
func Decide(p *acl.Policy, u *store.User, service string, scopes []acl.Scope, ip netip.Addr, now time.Time) (granted []acl.Scope, status store.Status) {
	return decide(p, u, service, scopes, ip, now, nil)
}

// decide is Decide that also fills dec (if not nil, one per scope) with
// what decided each scope, for the audit log.
func decide(p *acl.Policy, u *store.User, service string, scopes []acl.Scope, ip netip.Addr, now time.Time, dec []acl.Decider) ([]acl.Scope, store.Status) {
	sub := acl.Subject{IP: ip}
	if u != nil {
		if st := u.Status(now); st != store.StatusActive {
			return nil, st
		}
		sub.Account, sub.Labels, sub.Grants = u.Username, u.Labels, u.Grants
	}
	return Granted(p.AuthorizeDecided(sub, service, scopes, now, dec)), store.StatusActive
}
