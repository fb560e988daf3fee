package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// TokenServer is the configuration of `regctl serve`, the token server:
// what package token runs with. `regctl render` writes it into
// token-server.yaml from regctl.yaml (Config.TokenServer), `regctl serve`
// reads it from its flags, and both check it with the one Validate below,
// so a regctl.yaml that renders also starts.
type TokenServer struct {
	Issuer string // token "iss"; the registries' auth.token.issuer
	// Services are the registries' auth.token.service names this server
	// issues tokens for: a request names one (a request without a service
	// gets the first), rules' service conditions are decided against it,
	// and it is the token's "aud".
	Services []string
	// TokenLifetime is how long an access token is valid.
	TokenLifetime time.Duration
	// RefreshLifetime is how long a refresh token (docker login's stored
	// identity token) is valid; 0 means until revoked.
	RefreshLifetime time.Duration
	// ReloadInterval bounds staleness: rules are reloaded and cached users
	// expire at this interval, so store changes apply within it.
	ReloadInterval time.Duration
	// StoreTimeout caps each store query.
	StoreTimeout time.Duration
	// TrustedProxies may set X-Forwarded-For / X-Real-IP.
	TrustedProxies []netip.Prefix
	// AllowAnonymous lets requests without credentials be decided by the
	// rules as account ""; otherwise they get 401.
	AllowAnonymous bool
	// FailLimitIP and FailLimitAccount limit failed password
	// authentications per client and per account; a zero FailLimit is off.
	FailLimitIP, FailLimitAccount FailLimit
	// KeyFormat is how tokens name their signing key: KeyFormatX5C (the
	// default) or KeyFormatJWKS.
	KeyFormat string
	// BcryptCost is the cost of the dummy hash that unknown users are
	// compared against until the server has read users from the store;
	// from then on the dummy follows their most common cost.
	BcryptCost int
}

// Key formats: how a token names the key that signed it, which decides
// what the registry must be given to verify it.
const (
	// KeyFormatX5C sends the signing certificate and its CA in the
	// header (x5c), verified against the registry's rootcertbundle:
	// distribution 2.8, 3.0 and 3.1.
	KeyFormatX5C = "x5c"
	// KeyFormatJWKS sends only the key's kid, found in the registry's
	// jwks: distribution 3.x configured with jwks and no rootcertbundle.
	KeyFormatJWKS = "jwks"
)

// The bounds the token server holds its settings to.
const (
	MinTokenLifetime  = 10 * time.Second
	MaxTokenLifetime  = 24 * time.Hour
	MinReloadInterval = 100 * time.Millisecond
	MaxReloadInterval = 10 * time.Minute
	// DefaultBcryptCost is the cost `regctl user add` and `user passwd`
	// hash at, and the token server's first dummy hash.
	DefaultBcryptCost = 12
)

// Default login limits (regctl serve --fail-limit-ip, --fail-limit-account).
var (
	DefaultFailLimitIP      = FailLimit{Rate: rate.Limit(10.0 / 60), Burst: 20}
	DefaultFailLimitAccount = FailLimit{Rate: rate.Limit(20.0 / 60), Burst: 60}
)

// TokenServerDefaults returns the token server's documented defaults.
// Issuer and Service have none.
func TokenServerDefaults() TokenServer {
	return TokenServer{
		TokenLifetime:    5 * time.Minute,
		RefreshLifetime:  90 * 24 * time.Hour,
		ReloadInterval:   5 * time.Second,
		StoreTimeout:     3 * time.Second,
		FailLimitIP:      DefaultFailLimitIP,
		FailLimitAccount: DefaultFailLimitAccount,
		KeyFormat:        KeyFormatX5C,
		BcryptCost:       DefaultBcryptCost,
	}
}

// Service returns the service a request for service names: service itself
// if the server issues tokens for it, the first service if the request
// names none, and false otherwise.
func (t TokenServer) Service(service string) (string, bool) {
	if service == "" {
		return t.Services[0], true
	}
	return service, slices.Contains(t.Services, service)
}

// TokenServer is the token server's configuration that this regctl.yaml
// renders: its token settings over the server's defaults. (The addresses
// and paths are the container's, set by package render.)
func (c *Config) TokenServer() TokenServer {
	t := TokenServerDefaults()
	t.Issuer = c.Token.Issuer
	t.Services = append([]string{c.TokenService()}, c.Token.ExtraServices...)
	t.TokenLifetime = c.Token.Lifetime
	t.RefreshLifetime = c.Token.RefreshLifetime
	t.KeyFormat = c.Token.KeyFormat
	return t
}

// tokenServerKeys are the regctl.yaml keys of the token server's
// settings, by their token-server.yaml key (regctl serve's flag name).
var tokenServerKeys = map[string]string{
	"issuer":           "token.issuer",
	"service":          "token.extra-services",
	"token-lifetime":   "token.lifetime",
	"refresh-lifetime": "token.refresh-lifetime",
	"key-format":       "token.key-format",
}

// SettingError is a setting with a bad value. Key is the setting's name in
// the file it comes from (token-server.yaml's keys are regctl serve's
// flag names), so that each caller can name it in its own terms.
type SettingError struct {
	Key string
	Err error
}

func (e *SettingError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// Validate checks every setting and returns all problems, each a
// *SettingError keyed by regctl serve's flag name.
func (t TokenServer) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, &SettingError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	if t.Issuer == "" {
		add("issuer", "is empty")
	}
	if len(t.Services) == 0 {
		add("service", "is empty")
	}
	seen := map[string]bool{}
	for _, s := range t.Services {
		switch {
		case s == "":
			add("service", "an empty service name")
		case seen[s]:
			add("service", "%q is listed twice", s)
		}
		seen[s] = true
	}
	if t.TokenLifetime < MinTokenLifetime || t.TokenLifetime > MaxTokenLifetime {
		add("token-lifetime", "%s: must be between %s and %s", t.TokenLifetime, MinTokenLifetime, MaxTokenLifetime)
	}
	if t.RefreshLifetime < 0 {
		add("refresh-lifetime", "%s: must not be negative (0 means until revoked)", t.RefreshLifetime)
	}
	if t.KeyFormat != KeyFormatX5C && t.KeyFormat != KeyFormatJWKS {
		add("key-format", "%q: use %s (every registry version) or %s (distribution 3 with jwks only)", t.KeyFormat, KeyFormatX5C, KeyFormatJWKS)
	}
	if t.ReloadInterval < MinReloadInterval || t.ReloadInterval > MaxReloadInterval {
		add("reload-interval", "%s: must be between %s and %s", t.ReloadInterval, MinReloadInterval, MaxReloadInterval)
	}
	if t.StoreTimeout <= 0 {
		add("store-timeout", "%s: must be positive", t.StoreTimeout)
	}
	if t.BcryptCost < bcrypt.MinCost || t.BcryptCost > bcrypt.MaxCost {
		add("bcrypt-cost", "%d: must be between %d and %d", t.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	for _, l := range []struct {
		key   string
		limit FailLimit
	}{{"fail-limit-ip", t.FailLimitIP}, {"fail-limit-account", t.FailLimitAccount}} {
		if !l.limit.Off() && (l.limit.Burst > 1_000_000 || float64(l.limit.Rate) > 1000) {
			add(l.key, "%s is too large to limit anything", l.limit)
		}
	}
	return errors.Join(errs...)
}

// FailLimit is a token bucket of failed authentications: Burst failures at
// once, refilled at Rate per second. A zero FailLimit is off.
type FailLimit struct {
	Rate  rate.Limit // tokens per second
	Burst int
}

// Off reports whether the limit is disabled.
func (l FailLimit) Off() bool { return l.Rate <= 0 || l.Burst <= 0 }

// Interval is the time one token takes to refill.
func (l FailLimit) Interval() time.Duration {
	return max(1, time.Duration(float64(time.Second)/float64(l.Rate)))
}

// String renders the limit as ParseFailLimit reads it.
func (l FailLimit) String() string {
	if l.Off() {
		return "off"
	}
	perMin := float64(l.Rate) * 60
	if perMin == math.Trunc(perMin) {
		return fmt.Sprintf("%g/min,burst=%d", perMin, l.Burst)
	}
	return fmt.Sprintf("%g/h,burst=%d", float64(l.Rate)*3600, l.Burst)
}

// ParseFailLimit reads "N/UNIT[,burst=B]" (UNIT s, min or h, or a Go
// duration such as 30s; B defaults to 2N) or "off".
func ParseFailLimit(s string) (FailLimit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return FailLimit{}, nil
	}
	spec, burstSpec, hasBurst := strings.Cut(s, ",")
	num, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return FailLimit{}, fmt.Errorf("fail limit %q: want N/UNIT[,burst=B], e.g. 10/min,burst=20, or off", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return FailLimit{}, fmt.Errorf("fail limit %q: %q is not a positive number", s, num)
	}
	var per time.Duration
	switch u := strings.TrimSpace(unit); u {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	default:
		if per, err = time.ParseDuration(u); err != nil || per <= 0 {
			return FailLimit{}, fmt.Errorf("fail limit %q: unit %q is not s, min, h or a duration", s, u)
		}
	}
	l := FailLimit{Rate: rate.Limit(n / per.Seconds()), Burst: int(math.Ceil(2 * n))}
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burstSpec), "burst=")
		b, err := strconv.Atoi(v)
		if !ok || err != nil || b < 1 {
			return FailLimit{}, fmt.Errorf("fail limit %q: want burst=N with N ≥ 1 after the comma", s)
		}
		l.Burst = b
	}
	return l, nil
}
