package certs

import (
	"fmt"
	"time"
)

// Renewal defaults.
const (
	// DefaultRenewRatio is the fraction of a certificate's lifetime that
	// may remain when renewal is due without ARI (certmagic's and
	// Let's Encrypt's recommendation: renew with a third left).
	DefaultRenewRatio = 1.0 / 3
	// DefaultInterval is how often `regctl certs renew` runs from cron.
	DefaultInterval = 12 * time.Hour
	// emergencyRatio overrides a late ARI window: with a twentieth of the
	// lifetime left the certificate is renewed whatever the CA suggested.
	emergencyRatio = 1.0 / 20
)

// Policy says when a certificate is due for renewal.
type Policy struct {
	// RenewBefore, when positive, replaces the lifetime rule: renew when
	// less than this remains (`--days N`). It also takes precedence over a
	// future ARI window; a window that is already open is still honoured,
	// because the CA asks for replacement (for example before revoking).
	RenewBefore time.Duration
	// Ratio is the fraction of the lifetime left at which renewal is due
	// when the CA gives no ARI window. Zero means DefaultRenewRatio.
	Ratio float64
	// Interval is the time until the next scheduled run. An ARI window that
	// opens before then is due now, because waiting for the next run would
	// miss it. Zero means DefaultInterval.
	Interval time.Duration
}

// Reasons a Decision gives.
const (
	ReasonExpired   = "expired"
	ReasonARIOpen   = "ARI window open"
	ReasonARISoon   = "ARI window opens before the next run"
	ReasonARILater  = "ARI window not open yet"
	ReasonEmergency = "less than 1/20 of the lifetime left"
	ReasonDays      = "renew-before threshold reached"
	ReasonDaysLater = "renew-before threshold not reached"
	ReasonLifetime  = "less than 1/3 of the lifetime left"
	ReasonLifeLater = "more than 1/3 of the lifetime left"
)

// Decision is the outcome of Decide.
type Decision struct {
	// Due is true when the certificate should be renewed in this run.
	Due bool
	// At is when renewal is (or was) planned: the ARI window's start or the
	// lifetime threshold. It may lie in the past when Due.
	At time.Time
	// Reason says which rule decided, for logs and `certs status`.
	Reason string
}

// String is "due (REASON)" or "not due until TIME (REASON)".
func (d Decision) String() string {
	if d.Due {
		return fmt.Sprintf("due (%s)", d.Reason)
	}
	return fmt.Sprintf("not due until %s (%s)", d.At.UTC().Format(time.RFC3339), d.Reason)
}

// Decide says whether a certificate valid from notBefore to notAfter is
// due for renewal at now. ari is the CA's suggested renewal window (RFC
// 9773), nil when the CA offers none or it could not be fetched. The
// function is pure: the caller passes the clock.
//
// Order of the rules: an expired certificate is due; an open ARI window
// is due; with p.RenewBefore set, the threshold decides; otherwise the ARI
// window decides (due when it opens before now+p.Interval, or, whatever
// the window says, with a twentieth of the lifetime left); without ARI,
// the certificate is due with p.Ratio of its lifetime left.
func Decide(now, notBefore, notAfter time.Time, ari *RenewalWindow, p Policy) Decision {
	ratio := p.Ratio
	if ratio <= 0 || ratio >= 1 {
		ratio = DefaultRenewRatio
	}
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	lifetime := notAfter.Sub(notBefore)
	if lifetime < 0 {
		lifetime = 0
	}
	if !now.Before(notAfter) {
		return Decision{Due: true, At: notAfter, Reason: ReasonExpired}
	}
	if ari.Valid() && !now.Before(ari.Start) {
		return Decision{Due: true, At: ari.Start, Reason: ReasonARIOpen}
	}
	if p.RenewBefore > 0 {
		at := notAfter.Add(-p.RenewBefore)
		if !now.Before(at) {
			return Decision{Due: true, At: at, Reason: ReasonDays}
		}
		return Decision{At: at, Reason: ReasonDaysLater}
	}
	if ari.Valid() {
		emergency := notAfter.Add(-scale(lifetime, emergencyRatio))
		if !now.Before(emergency) {
			return Decision{Due: true, At: emergency, Reason: ReasonEmergency}
		}
		if ari.Start.Before(now.Add(interval)) {
			return Decision{Due: true, At: ari.Start, Reason: ReasonARISoon}
		}
		at := ari.Start
		if emergency.Before(at) {
			at = emergency
		}
		return Decision{At: at, Reason: ReasonARILater}
	}
	at := notAfter.Add(-scale(lifetime, ratio))
	if !now.Before(at) {
		return Decision{Due: true, At: at, Reason: ReasonLifetime}
	}
	return Decision{At: at, Reason: ReasonLifeLater}
}

// WarnThreshold is the default monitoring threshold for a certificate of
// the given lifetime: 14 days, or a sixth of the lifetime for short-lived
// certificates (one day for a six-day certificate), so that a healthy
// certificate renewed at a third of its lifetime never warns.
func WarnThreshold(lifetime time.Duration) time.Duration {
	const def = 14 * 24 * time.Hour
	if s := lifetime / 6; s < def {
		return s
	}
	return def
}

func scale(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * f)
}
