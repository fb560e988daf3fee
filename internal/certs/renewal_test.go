package certs

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/certificate"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	nb, na := t0, t0.Add(90*day) // a 90-day certificate
	win := func(start, end time.Duration) *RenewalWindow {
		return &RenewalWindow{Start: t0.Add(start), End: t0.Add(end)}
	}
	tests := []struct {
		name       string
		now        time.Time
		notBefore  time.Time
		notAfter   time.Time
		ari        *RenewalWindow
		policy     Policy
		wantDue    bool
		wantAt     time.Time
		wantReason string
	}{
		{"fresh, no ARI", t0.Add(day), nb, na, nil, Policy{}, false, t0.Add(60 * day), ReasonLifeLater},
		{"a third left, no ARI", t0.Add(60 * day), nb, na, nil, Policy{}, true, t0.Add(60 * day), ReasonLifetime},
		{"just before a third left", t0.Add(60*day - time.Minute), nb, na, nil, Policy{}, false, t0.Add(60 * day), ReasonLifeLater},
		{"custom ratio", t0.Add(45 * day), nb, na, nil, Policy{Ratio: 0.5}, true, t0.Add(45 * day), ReasonLifetime},
		{"expired", t0.Add(91 * day), nb, na, nil, Policy{}, true, na, ReasonExpired},
		{"expired with ARI far away", t0.Add(90 * day), nb, na, win(100*day, 101*day), Policy{}, true, na, ReasonExpired},
		{"ARI window later", t0.Add(30 * day), nb, na, win(59*day, 61*day), Policy{}, false, t0.Add(59 * day), ReasonARILater},
		{"ARI window opens before the next run", t0.Add(59*day - 6*time.Hour), nb, na, win(59*day, 61*day), Policy{}, true, t0.Add(59 * day), ReasonARISoon},
		{"ARI window opens after the next run", t0.Add(59*day - 6*time.Hour), nb, na, win(59*day, 61*day), Policy{Interval: time.Hour}, false, t0.Add(59 * day), ReasonARILater},
		{"ARI window open", t0.Add(60 * day), nb, na, win(59*day, 61*day), Policy{}, true, t0.Add(59 * day), ReasonARIOpen},
		{"ARI window in the past (revocation)", t0.Add(10 * day), nb, na, win(9*day, 9*day+time.Second), Policy{}, true, t0.Add(9 * day), ReasonARIOpen},
		{"ARI window before a third left wins over lifetime", t0.Add(40 * day), nb, na, win(40*day+time.Hour, 41*day), Policy{}, true, t0.Add(40*day + time.Hour), ReasonARISoon},
		{"late ARI window, emergency", t0.Add(86 * day), nb, na, win(88*day, 89*day), Policy{}, true, t0.Add(90*day - 90*day/20), ReasonEmergency},
		{"late ARI window, before the emergency", t0.Add(80 * day), nb, na, win(88*day, 89*day), Policy{}, false, t0.Add(90*day - 90*day/20), ReasonARILater},
		{"invalid ARI window is ignored", t0.Add(60 * day), nb, na, win(80*day, 70*day), Policy{}, true, t0.Add(60 * day), ReasonLifetime},
		{"--days not reached", t0.Add(59 * day), nb, na, nil, Policy{RenewBefore: 30 * day}, false, t0.Add(60 * day), ReasonDaysLater},
		{"--days reached", t0.Add(60 * day), nb, na, nil, Policy{RenewBefore: 30 * day}, true, t0.Add(60 * day), ReasonDays},
		{"--days longer than the lifetime forces", t0.Add(time.Hour), nb, na, win(59*day, 61*day), Policy{RenewBefore: 100 * day}, true, t0.Add(-10 * day), ReasonDays},
		{"--days overrides an ARI window opening soon", t0.Add(59*day - 6*time.Hour), nb, na, win(59*day, 61*day), Policy{RenewBefore: 10 * day}, false, t0.Add(80 * day), ReasonDaysLater},
		{"--days keeps an open ARI window", t0.Add(59*day + time.Hour), nb, na, win(59*day, 61*day), Policy{RenewBefore: 10 * day}, true, t0.Add(59 * day), ReasonARIOpen},
		{"six-day certificate, no ARI", t0.Add(4 * day), nb, t0.Add(6 * day), nil, Policy{}, true, t0.Add(4 * day), ReasonLifetime},
		{"six-day certificate, day 3", t0.Add(3 * day), nb, t0.Add(6 * day), nil, Policy{}, false, t0.Add(4 * day), ReasonLifeLater},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.now, tt.notBefore, tt.notAfter, tt.ari, tt.policy)
			if got.Due != tt.wantDue || !got.At.Equal(tt.wantAt) || got.Reason != tt.wantReason {
				t.Errorf("Decide = {Due:%v At:%s Reason:%q}, want {Due:%v At:%s Reason:%q}",
					got.Due, got.At, got.Reason, tt.wantDue, tt.wantAt, tt.wantReason)
			}
		})
	}
}

// TestDecideVersusShouldRenewAt documents why Decide does not use lego's
// ShouldRenewAt(now, 0) alone: for a window that opens between now and the
// next cron run, lego says "not yet" (nil), and the next run would come
// after the window opened, at a random later point or, for a short window,
// after it closed.
func TestDecideVersusShouldRenewAt(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	w := &RenewalWindow{Start: now.Add(2 * time.Hour), End: now.Add(3 * time.Hour)}
	info := certificate.RenewalInfoResponse{RenewalInfoResponse: acme.RenewalInfoResponse{
		SuggestedWindow: acme.Window{Start: w.Start, End: w.End},
	}}
	if at := info.ShouldRenewAt(now, 0); at != nil {
		t.Fatalf("lego ShouldRenewAt(now, 0) = %s, want nil", at)
	}
	if d := Decide(now, now.Add(-40*24*time.Hour), now.Add(50*24*time.Hour), w, Policy{}); !d.Due || d.Reason != ReasonARISoon {
		t.Errorf("Decide = %+v, want due because the window opens before the next run", d)
	}
}

func TestDecisionString(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if got, want := (Decision{At: at, Reason: ReasonARILater}).String(), "not due until 2026-03-01T12:00:00Z (ARI window not open yet)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := (Decision{Due: true, Reason: ReasonExpired}).String(), "due (expired)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestWarnThreshold(t *testing.T) {
	day := 24 * time.Hour
	for _, tt := range []struct{ lifetime, want time.Duration }{
		{90 * day, 14 * day},
		{6 * day, day},
		{160 * time.Hour, 160 * time.Hour / 6},
		{365 * day, 14 * day},
	} {
		if got := WarnThreshold(tt.lifetime); got != tt.want {
			t.Errorf("WarnThreshold(%s) = %s, want %s", tt.lifetime, got, tt.want)
		}
	}
}

func TestCronFile(t *testing.T) {
	a := string(CronFile("/usr/local/bin/regctl", "/opt/regctl", "host-a"))
	if !strings.HasSuffix(a, " * * * root /usr/local/bin/regctl certs renew --root /opt/regctl -q\n") {
		t.Errorf("cron file:\n%s", a)
	}
	var minute, h1, h2 int
	line := a[strings.LastIndex(strings.TrimSuffix(a, "\n"), "\n")+1:]
	if _, err := fmt.Sscanf(line, "%d %d,%d ", &minute, &h1, &h2); err != nil || minute > 59 || h1 > 11 || h2 != h1+12 {
		t.Errorf("schedule %q: %v", line, err)
	}
	if a != string(CronFile("/usr/local/bin/regctl", "/opt/regctl", "host-a")) {
		t.Error("not deterministic")
	}
}
