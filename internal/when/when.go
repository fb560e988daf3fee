// Package when parses the WHEN values of expiry flags: an RFC 3339 date
// or date-time, or a duration from now such as 90d, 12h, 2w or 1h30m.
package when

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse turns s into an absolute time. A bare date (2026-12-31) means
// midnight UTC at the start of that day. Durations count from now and must
// be positive.
func Parse(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty time: use an RFC 3339 date or time (2026-12-31, 2026-12-31T18:00:00Z) or a duration (90d, 12h)")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time %q: use an RFC 3339 date or time (2026-12-31, 2026-12-31T18:00:00Z) or a duration (90d, 12h, 2w)", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("invalid time %q: a duration must be positive", s)
	}
	return now.Add(d), nil
}

// maxDuration keeps now+d far from overflow: about 100 years.
const maxDuration = 100 * 365 * 24 * time.Hour

// ParseDuration extends time.ParseDuration with d (days) and w (weeks),
// also in combinations such as 1d12h.
func ParseDuration(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			break
		}
		var unit time.Duration
		switch rest[i] {
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		}
		if unit == 0 {
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > int64(maxDuration/unit) {
			return 0, fmt.Errorf("duration %q too large", s)
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, err
		}
		total += d
	}
	if total > maxDuration || total < -maxDuration {
		return 0, fmt.Errorf("duration %q too large", s)
	}
	return total, nil
}
