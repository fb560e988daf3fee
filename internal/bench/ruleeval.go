package bench

import (
	"fmt"
	"slices"
	"time"

	"github.com/regctl/regctl/internal/acl"
)

// RuleEval is the cost of deciding one scope against the benchmark's
// rules, measured in-process on the compiled policy the server builds.
type RuleEval struct {
	Rules     int     `json:"rules"`
	Samples   int     `json:"samples"`
	CompileMS float64 `json:"compile_ms"` // acl.Compile of the whole rule set, once
	P50NS     int64   `json:"p50_ns"`
	P90NS     int64   `json:"p90_ns"`
	P99NS     int64   `json:"p99_ns"`
	MaxNS     int64   `json:"max_ns"`
}

// MeasureRuleEval compiles Rules(rules) and times samples decisions of one
// scope each, for users 0..users-1 and the scopes of Scope in turn.
func MeasureRuleEval(rules, users, samples int) (RuleEval, error) {
	rs := Rules(rules)
	t0 := time.Now()
	p, err := acl.Compile(rs)
	if err != nil {
		return RuleEval{}, fmt.Errorf("compile the benchmark rules: %w", err)
	}
	res := RuleEval{Rules: p.Len(), Samples: samples, CompileMS: float64(time.Since(t0).Microseconds()) / 1000}
	hashes := []string{"x"}
	now := time.Now()
	lat := make([]time.Duration, 0, samples)
	for n := range samples {
		i := (n * 7919) % max(users, 1) // spread over the users
		u := User(i, hashes, now)
		sc, err := acl.ParseScope(Scope(i, n, rules))
		if err != nil {
			return RuleEval{}, err
		}
		sub := Subject(u)
		scopes := []acl.Scope{sc}
		start := time.Now()
		p.Authorize(sub, Service, scopes, now)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(q int) int64 { return lat[min(len(lat)*q/100, len(lat)-1)].Nanoseconds() }
	res.P50NS, res.P90NS, res.P99NS, res.MaxNS = pct(50), pct(90), pct(99), lat[len(lat)-1].Nanoseconds()
	return res, nil
}
