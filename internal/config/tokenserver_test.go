package config

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestParseFailLimit(t *testing.T) {
	tests := []struct {
		in   string
		want FailLimit
		err  bool
	}{
		{in: "10/min,burst=20", want: FailLimit{Rate: rate.Limit(10.0 / 60), Burst: 20}},
		{in: "10/min", want: FailLimit{Rate: rate.Limit(10.0 / 60), Burst: 20}},
		{in: "100/h,burst=300", want: FailLimit{Rate: rate.Limit(100.0 / 3600), Burst: 300}},
		{in: "1/30s", want: FailLimit{Rate: rate.Limit(1.0 / 30), Burst: 2}},
		{in: "2/s", want: FailLimit{Rate: 2, Burst: 4}},
		{in: "off"},
		{in: "0"},
		{in: "ten/min", err: true},
		{in: "10", err: true},
		{in: "10/fortnight", err: true},
		{in: "-1/min", err: true},
		{in: "10/min,burst=0", err: true},
		{in: "10/min,20", err: true},
	}
	for _, tt := range tests {
		got, err := ParseFailLimit(tt.in)
		if (err != nil) != tt.err || (err == nil && (math.Abs(float64(got.Rate-tt.want.Rate)) > 1e-12 || got.Burst != tt.want.Burst)) {
			t.Errorf("ParseFailLimit(%q) = %+v, %v; want %+v, error %t", tt.in, got, err, tt.want, tt.err)
		}
	}
	for _, l := range []FailLimit{DefaultFailLimitIP, DefaultFailLimitAccount, {}, {Rate: rate.Limit(7.0 / 3600), Burst: 3}} {
		back, err := ParseFailLimit(l.String())
		if err != nil || math.Abs(float64(back.Rate-l.Rate)) > 1e-12 || back.Burst != l.Burst {
			t.Errorf("%+v → %q → %+v, %v", l, l.String(), back, err)
		}
	}
	if DefaultFailLimitIP.String() != "10/min,burst=20" || DefaultFailLimitAccount.String() != "20/min,burst=60" {
		t.Errorf("defaults render as %s and %s", DefaultFailLimitIP, DefaultFailLimitAccount)
	}
}

// TestTokenServerValidate: every bad value is reported, each as a
// *SettingError keyed by regctl serve's flag name, all at once.
func TestTokenServerValidate(t *testing.T) {
	ok := TokenServerDefaults()
	ok.Issuer, ok.Services = "regctl", []string{"registry.example.com"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with an issuer and a service: %v", err)
	}
	tests := []struct {
		key    string
		change func(*TokenServer)
	}{
		{"issuer", func(t *TokenServer) { t.Issuer = "" }},
		{"service", func(t *TokenServer) { t.Services = nil }},
		{"service", func(t *TokenServer) { t.Services = []string{"a", ""} }},
		{"service", func(t *TokenServer) { t.Services = []string{"a", "b", "a"} }},
		{"token-lifetime", func(t *TokenServer) { t.TokenLifetime = MinTokenLifetime - time.Nanosecond }},
		{"token-lifetime", func(t *TokenServer) { t.TokenLifetime = MaxTokenLifetime + time.Nanosecond }},
		{"refresh-lifetime", func(t *TokenServer) { t.RefreshLifetime = -time.Second }},
		{"reload-interval", func(t *TokenServer) { t.ReloadInterval = MinReloadInterval - 1 }},
		{"reload-interval", func(t *TokenServer) { t.ReloadInterval = MaxReloadInterval + 1 }},
		{"store-timeout", func(t *TokenServer) { t.StoreTimeout = 0 }},
		{"bcrypt-cost", func(t *TokenServer) { t.BcryptCost = 3 }},
		{"bcrypt-cost", func(t *TokenServer) { t.BcryptCost = 32 }},
		{"fail-limit-ip", func(t *TokenServer) { t.FailLimitIP = FailLimit{Rate: 1001, Burst: 1} }},
		{"fail-limit-account", func(t *TokenServer) { t.FailLimitAccount = FailLimit{Rate: 1, Burst: 1_000_001} }},
	}
	all := ok
	for _, tt := range tests {
		c := ok
		tt.change(&c)
		tt.change(&all)
		err := c.Validate()
		var se *SettingError
		if !errors.As(err, &se) || se.Key != tt.key {
			t.Errorf("%s: got %v, want a *SettingError for %s", tt.key, err, tt.key)
		}
	}
	// The edges themselves are allowed.
	edge := ok
	edge.TokenLifetime, edge.ReloadInterval, edge.RefreshLifetime = MinTokenLifetime, MaxReloadInterval, 0
	if err := edge.Validate(); err != nil {
		t.Errorf("edges: %v", err)
	}
	// All at once: one line per key.
	msg := all.Validate().Error()
	for _, tt := range tests {
		if !strings.Contains(msg, tt.key+": ") {
			t.Errorf("all bad: no %s in\n%s", tt.key, msg)
		}
	}
}
