package acl

import (
	"time"
)

// Decider names what decided one scope: the first matching rule, if any
// (Rule is its seq when HasRule), and the patterns of the matching grants.
// Neither means nothing matched and the scope got nothing. FailedClosed
// means the search stopped before a rule matched, at a rule the scope's
// budget could not pay for or that could not be decided (see Policy), so
// the rules allowed nothing.
type Decider struct {
	Rule         int64
	HasRule      bool
	Grants       []string
	FailedClosed bool
}

// DecidedBy returns what decided scope for sub, finding the deciding rule
// the way Authorize does (through the rule index) and the grants the way
// evaluate matches them. It costs about one Authorize of one scope, far
// less than Explain; the token server's audit log uses it.
func (p *Policy) DecidedBy(sub Subject, service string, scope Scope, now time.Time) Decider {
	var d Decider
	p.evaluate(nil, &sub, service, &scope, now, nil, false, &d)
	return d
}
