// Package doctor checks a deployed regctl host and says how to fix what is
// wrong: `regctl doctor`. Each check reads the install root rendered from
// regctl.yaml (see internal/render's layout), asks the store, or runs a
// read-only command (ufw, fail2ban-client, docker compose), and returns
// findings: OK, WARN, ERROR or SKIP, each with a one-line fix.
//
// Everything that reaches beyond the root is injected through Env (the
// clock, the resolver, the host's addresses, the command runner, the
// store), so tests run every check against a scratch root without touching
// the network or the machine.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/store"
)

// Status is the verdict of one finding.
type Status int

// The statuses, from good to bad; Skip means the check could not run here.
const (
	OK Status = iota
	Warn
	Error
	Skip
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	case Error:
		return "ERROR"
	}
	return "SKIP"
}

// MarshalText makes a Status "OK", "WARN", "ERROR" or "SKIP" in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one result of one check.
type Finding struct {
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`       // what was found
	Fix     string `json:"fix,omitempty"` // one line; empty when there is nothing to do
}

// Check names, in the order Run reports them.
const (
	CheckDNS           = "dns"
	CheckTLS           = "tls-cert"
	CheckSigningKeys   = "signing-keys"
	CheckSigningExpiry = "signing-cert"
	CheckSigningBundle = "signing-bundle"
	CheckTokenConfig   = "token-config"
	CheckStore         = "store"
	CheckIndexes       = "store-indexes"
	CheckClock         = "clock-skew"
	CheckModes         = "file-modes"
	CheckPorts         = "compose-ports"
	CheckUFW           = "ufw"
	CheckFail2ban      = "fail2ban"
)

// Thresholds.
const (
	// TLSWarning: a TLS certificate with less left is overdue for renewal
	// (regctl renews with a third of its lifetime left, 30 days for Let's
	// Encrypt's 90).
	TLSWarning = 14 * 24 * time.Hour
	// SkewWarning and SkewError bound the clock difference with the store.
	SkewWarning = 2 * time.Second
	SkewError   = time.Minute
	// JailName is the fail2ban jail `regctl render` writes.
	JailName = "regctl-auth"
)

// Runner runs a read-only command and returns its standard output
// (provision.Host's Query).
type Runner interface {
	Query(ctx context.Context, name string, args ...string) ([]byte, error)
}

// IndexChecker is implemented by stores that can tell whether their
// indexes exist (the MongoDB store).
type IndexChecker interface {
	CheckIndexes(ctx context.Context) error
}

// ServerClock is implemented by stores with a clock of their own (the
// MongoDB store).
type ServerClock interface {
	ServerTime(ctx context.Context) (time.Time, error)
}

// Env is the deployment to check and what the checks may use.
type Env struct {
	Config *config.Config
	// ConfigPath is regctl.yaml's path, for the fixes ("" if unknown).
	ConfigPath string
	Now        func() time.Time
	LookupHost func(ctx context.Context, name string) ([]string, error)
	HostAddrs  func() ([]net.IP, error)
	Runner     Runner
	// Store opens the store to check. Nil means it cannot be reached from
	// here: for the managed MongoDB, the token server's /readyz is asked
	// through docker compose instead; StoreNote says why.
	Store     func(ctx context.Context) (store.Store, error)
	StoreNote string
}

// Run runs every check and returns the findings in check order.
func Run(ctx context.Context, e Env) []Finding {
	if e.Now == nil {
		e.Now = time.Now
	}
	r := &run{Env: e, c: e.Config, now: e.Now()}
	for _, check := range []func(context.Context){
		r.dns, r.tls, r.signing, r.tokenConfig, r.store, r.fileModes, r.composePorts, r.ufw, r.fail2ban,
	} {
		if ctx.Err() != nil {
			break
		}
		check(ctx)
	}
	return r.out
}

// Failed reports whether any finding is an error.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Status == Error {
			return true
		}
	}
	return false
}

// Count returns how many findings have each status.
func Count(fs []Finding) map[Status]int {
	n := map[Status]int{}
	for _, f := range fs {
		n[f.Status]++
	}
	return n
}

// run is one doctor run.
type run struct {
	Env
	c   *config.Config
	now time.Time
	out []Finding
}

func (r *run) add(check string, st Status, fix, format string, args ...any) {
	if st == OK {
		fix = ""
	}
	r.out = append(r.out, Finding{Check: check, Status: st, Message: fmt.Sprintf(format, args...), Fix: fix})
}

// abs is a path below the root.
func (r *run) abs(rel string) string { return filepath.Join(r.c.Root, filepath.FromSlash(rel)) }

// configFlag is " --config PATH" for fixes, or "".
func (r *run) configFlag() string {
	if r.ConfigPath == "" {
		return ""
	}
	return " --config " + r.ConfigPath
}

// compose is the docker compose command line of the deployment.
func (r *run) compose() []string {
	return []string{"docker", "compose", "-f", r.abs("compose.yaml"), "-p", r.c.Project}
}

func notExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// days renders a duration in whole days, for messages.
func days(d time.Duration) string {
	n := int(d / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

func date(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
