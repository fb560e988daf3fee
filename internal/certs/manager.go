package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// ErrStagingOverProduction is returned instead of replacing a production
// certificate with one from a staging CA (whose certificates no browser or
// docker client trusts).
var ErrStagingOverProduction = errors.New("refusing to replace a production certificate with one from a staging CA")

// DefaultLockWait is how long a run waits for another run's lock.
const DefaultLockWait = 10 * time.Minute

// Manager obtains, renews and reports the certificates under a Layout.
// Every write happens under the file lock Layout.LockFile, after checking
// again what is on disk (another run may have done the work meanwhile).
type Manager struct {
	Layout Layout
	// Issuer talks to the CA; only Obtain and Renew need it.
	Issuer Issuer
	// Directory is the Issuer's ACME directory URL and Staging says that it
	// is a staging CA (IsStagingDirectory is also consulted). Both are
	// recorded in meta.json and decide the staging-over-production
	// refusal.
	Directory string
	Staging   bool
	// Reloader, if set, is checked and reloaded after a renewal, and after
	// Obtain replaced or created a certificate while the proxy was up.
	Reloader Reloader
	// Runner runs deploy hooks; nil means ExecRunner.
	Runner Runner
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LockWait bounds the wait for another run's lock; 0 means
	// DefaultLockWait.
	LockWait time.Duration
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (m *Manager) store() Store { return Store{Dir: m.Layout.LiveDir()} }

// targetStaging reports whether the configured CA is a staging CA.
func (m *Manager) targetStaging() bool { return m.Staging || IsStagingDirectory(m.Directory) }

// lock takes the file lock, waiting up to LockWait.
func (m *Manager) lock(ctx context.Context) (*Lock, error) {
	wait := m.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	if l, err := TryLock(m.Layout.LockFile()); !errors.Is(err, ErrLocked) {
		return l, err
	}
	m.log().Info("waiting for another regctl certs run to finish", "lock", m.Layout.LockFile(), "max", wait)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return AcquireLock(ctx, m.Layout.LockFile(), 0)
}

func (m *Manager) unlock(l *Lock) {
	if err := l.Release(); err != nil {
		m.log().Warn("release lock", "err", err)
	}
}

// checkStaging refuses to put a staging certificate over cur when cur is
// a production certificate, unless allowed.
func (m *Manager) checkStaging(cur *Cert, allow bool) error {
	if cur == nil || allow || !m.targetStaging() || cur.Staging() {
		return nil
	}
	return fmt.Errorf("%s: %w (current one issued by %q, valid until %s; new CA %s)",
		cur.Name, ErrStagingOverProduction, IssuerName(cur.Leaf), cur.Leaf.NotAfter.UTC().Format(time.RFC3339), m.Directory)
}

// ObtainOptions are the settings of Manager.Obtain.
type ObtainOptions struct {
	// Names are the DNS names (or IP addresses) the certificate covers.
	Names []string
	// CertName is the directory name; "" means CertName(Names).
	CertName string
	// Profile is the certificate profile; "" means the CA's default.
	Profile string
	// Force obtains a new certificate even when a valid one for exactly
	// these names, from the same kind of CA, is not yet due for renewal.
	Force bool
	// BreakMyCerts allows replacing a production certificate with a
	// staging one.
	BreakMyCerts bool
	// Policy decides whether an existing certificate is due.
	Policy Policy
}

// ObtainResult is the outcome of Manager.Obtain.
type ObtainResult struct {
	Cert *Cert
	// Obtained is false when an existing certificate was kept; Reason
	// says why.
	Obtained bool
	Reason   string
	// Previous is the certificate that was replaced, if any.
	Previous *Cert
	// Challenge is how the names were validated.
	Challenge ChallengeMode
	// Reloaded is true when the proxy was checked and reloaded. ReloadErr
	// is why not, after a DNS-01 issuance (nginx may not be running yet,
	// so it is not an error then).
	Reloaded  bool
	ReloadErr error
}

// Obtain gets a certificate for o.Names and stores it, unless a valid one
// that is not due already exists (then it only reports it). It never puts
// a staging certificate over a production one unless o.BreakMyCerts.
// After a webroot issuance (so the proxy is up) it checks and reloads the
// proxy, and a failure is returned with the result (the certificate is
// stored); after a DNS-01 issuance it tries, and a failure is only
// recorded in ReloadErr; after a standalone one the proxy is down.
func (m *Manager) Obtain(ctx context.Context, o ObtainOptions) (*ObtainResult, error) {
	names, err := NormalizeNames(o.Names)
	if err != nil {
		return nil, err
	}
	name := o.CertName
	if name == "" {
		if name, err = CertName(names); err != nil {
			return nil, err
		}
	} else if err := checkCertName(name); err != nil {
		return nil, err
	}
	if err := CheckProfile(o.Profile); err != nil {
		return nil, err
	}
	log := m.log().With("cert", name)

	// check looks at what is stored: a result means nothing is to be done.
	check := func() (*ObtainResult, *Cert, error) {
		cur, err := m.store().Load(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, nil
		case err != nil:
			log.Warn("the stored certificate is unreadable; obtaining a new one", "err", err)
			return nil, nil, nil
		}
		if err := m.checkStaging(cur, o.BreakMyCerts); err != nil {
			return nil, nil, err
		}
		if o.Force {
			return nil, cur, nil
		}
		if !cur.HasMeta || cur.Meta.Directory != m.Directory {
			// A certificate regctl did not obtain from this CA (a
			// self-signed one from `init --self-signed`, one copied in
			// by hand, one from the CA configured before) is replaced,
			// however long it is still valid.
			log.Info("the certificate is not from the configured CA; obtaining a new one",
				"issuer", IssuerName(cur.Leaf), "from", cur.Meta.Directory, "configured", m.Directory)
			return nil, cur, nil
		}
		if !sameNames(cur.Meta.Domains, names) {
			log.Info("the names changed; obtaining a new certificate", "old", strings.Join(cur.Meta.Domains, ","), "new", strings.Join(names, ","))
			return nil, cur, nil
		}
		if cur.Staging() != m.targetStaging() {
			return nil, cur, nil
		}
		if o.Profile != "" && o.Profile != cur.Meta.Profile {
			return nil, cur, nil
		}
		d := Decide(m.now(), cur.Leaf.NotBefore, cur.Leaf.NotAfter, cur.Meta.ARI, o.Policy)
		if d.Due {
			return nil, cur, nil
		}
		return &ObtainResult{Cert: cur, Reason: "a valid certificate for these names exists, " + d.String()}, cur, nil
	}
	if res, _, err := check(); res != nil || err != nil {
		return res, err
	}
	l, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer m.unlock(l)
	res, cur, err := check()
	if res != nil || err != nil {
		return res, err
	}

	req := Request{Domains: names, Profile: o.Profile}
	var issued *Issued
	if m.canReplace(cur, names) {
		issued, err = m.Issuer.Renew(ctx, cur.Leaf, req)
	} else {
		issued, err = m.Issuer.Obtain(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	c, err := m.save(name, issued, req)
	if err != nil {
		return nil, err
	}
	log.Info("certificate stored", "serial", c.Meta.Serial, "not_after", c.Leaf.NotAfter.UTC(), "dir", c.Dir)
	res = &ObtainResult{Cert: c, Obtained: true, Previous: cur, Challenge: issued.Challenge}
	if m.Reloader == nil || issued.Challenge == ChallengeStandalone {
		return res, nil
	}
	if err := m.reload(ctx); err != nil {
		if issued.Challenge != ChallengeDNS {
			return res, err
		}
		log.Warn("nginx not reloaded", "err", err)
		res.ReloadErr = err
		return res, nil
	}
	res.Reloaded = true
	return res, nil
}

// canReplace reports whether a new order may name cur as replaced (ARI):
// cur came from the same CA and shares a name with the new order.
func (m *Manager) canReplace(cur *Cert, names []string) bool {
	if cur == nil || cur.Meta.Directory != m.Directory || len(cur.Leaf.AuthorityKeyId) == 0 {
		return false
	}
	for _, n := range cur.Meta.Domains {
		if slices.Contains(names, n) {
			return true
		}
	}
	return false
}

func (m *Manager) save(name string, iss *Issued, req Request) (*Cert, error) {
	meta := Meta{
		Directory:  m.Directory,
		Staging:    m.targetStaging(),
		Profile:    req.Profile,
		CertURL:    iss.CertURL,
		Challenge:  string(iss.Challenge),
		ObtainedAt: m.now().UTC(),
		Replaces:   iss.Replaces,
	}
	return m.store().Save(name, iss.Bundle, meta)
}

// reload checks and reloads the proxy. Until that succeeds, a marker file
// (Layout.ReloadPendingFile) records that the proxy may serve an old
// certificate: the next Renew retries the reload even when nothing is
// due, and Status reports it.
func (m *Manager) reload(ctx context.Context) error {
	marker := m.Layout.ReloadPendingFile()
	if err := WriteFileAtomic(marker, []byte(m.now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return err
	}
	if err := m.Reloader.Check(ctx); err != nil {
		return err
	}
	if err := m.Reloader.Reload(ctx); err != nil {
		return err
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log().Warn("remove reload marker", "err", err)
	}
	m.log().Info("nginx reloaded")
	return nil
}

// ReloadPending reports whether a reload failed (or was interrupted) after
// a certificate changed, and since when.
func (m *Manager) ReloadPending() (bool, time.Time) {
	b, err := os.ReadFile(m.Layout.ReloadPendingFile())
	if err != nil {
		return false, time.Time{}
	}
	t, _ := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	return true, t
}

// RenewOptions are the settings of Manager.Renew.
type RenewOptions struct {
	// Names limits the run to these certificate names; empty means all.
	Names []string
	// Policy decides which certificates are due.
	Policy Policy
	// Force renews every selected certificate, due or not.
	Force bool
	// Profile, if set, replaces the profile recorded for each certificate.
	Profile string
	// BreakMyCerts allows replacing production certificates with staging
	// ones.
	BreakMyCerts bool
	// DeployHook, if set, is run with `sh -c` after each renewal (after
	// the reload), with RENEWED_LINEAGE (the certificate's directory),
	// RENEWED_DOMAINS (space-separated names) and REGCTL_CERT_NAME set.
	DeployHook string
}

// RenewOutcome is what happened to one certificate.
type RenewOutcome struct {
	Name     string
	Decision Decision
	Renewed  bool
	// Cert is the certificate now stored (the new one if Renewed).
	Cert *Cert
	// Previous is the replaced certificate when Renewed.
	Previous *Cert
	// Note explains a skip that is not a plain "not due".
	Note string
	Err  error
}

// RenewResult is the outcome of Manager.Renew.
type RenewResult struct {
	Outcomes []RenewOutcome
	// Reloaded is true when the proxy was checked and reloaded; ReloadErr
	// is why not, after a renewal.
	Reloaded  bool
	ReloadErr error
	// HookErrs are the failures of the deploy hook.
	HookErrs []error
}

// Renewed returns the number of renewed certificates.
func (r *RenewResult) Renewed() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Renewed {
			n++
		}
	}
	return n
}

// Renew renews the certificates that are due. Per certificate it asks the
// CA for its ARI window (when the Issuer is a RenewalInfoer and the
// certificate came from the configured CA), records it in meta.json, and
// applies Decide. A due certificate is renewed under the lock, after
// checking that no other run replaced it meanwhile; the new order names
// the old certificate as replaced. Only if something was renewed (or an
// earlier reload failed, see ReloadPending) is the proxy checked and
// reloaded; then the deploy hook runs for each renewed certificate. The
// error joins every certificate's error and the reload's; the result is
// always returned.
func (m *Manager) Renew(ctx context.Context, o RenewOptions) (*RenewResult, error) {
	if err := CheckProfile(o.Profile); err != nil {
		return nil, err
	}
	all, err := m.store().List()
	if err != nil {
		return nil, err
	}
	names := all
	if len(o.Names) > 0 {
		names = nil
		for _, n := range o.Names {
			if !slices.Contains(all, n) {
				return nil, fmt.Errorf("no certificate called %q in %s", n, m.Layout.LiveDir())
			}
			names = append(names, n)
		}
	}
	res := &RenewResult{}
	var errs []error
	for _, name := range names {
		out := m.renewOne(ctx, name, o)
		if out.Err != nil {
			errs = append(errs, out.Err)
		}
		res.Outcomes = append(res.Outcomes, out)
		if ctx.Err() != nil {
			break
		}
	}
	pending, _ := m.ReloadPending()
	if res.Renewed() == 0 && !pending {
		return res, errors.Join(errs...)
	}
	if res.Renewed() == 0 {
		m.log().Info("retrying the nginx reload that failed after the last change")
	}
	if m.Reloader != nil {
		if err := m.reload(ctx); err != nil {
			res.ReloadErr = err
			return res, errors.Join(append(errs, err)...)
		}
		res.Reloaded = true
	}
	if o.DeployHook != "" {
		for _, out := range res.Outcomes {
			if out.Renewed {
				if err := m.runHook(ctx, o.DeployHook, out.Cert); err != nil {
					res.HookErrs = append(res.HookErrs, err)
					errs = append(errs, err)
				}
			}
		}
	}
	return res, errors.Join(errs...)
}

func (m *Manager) renewOne(ctx context.Context, name string, o RenewOptions) RenewOutcome {
	log := m.log().With("cert", name)
	out := RenewOutcome{Name: name}
	cur, err := m.store().Load(name)
	if err != nil {
		out.Err = err
		return out
	}
	out.Cert = cur
	ari, fetched := cur.Meta.ARI, false
	ri, ok := m.Issuer.(RenewalInfoer)
	switch {
	case !ok:
	case cur.HasMeta && cur.Meta.Directory != m.Directory:
		log.Info("certificate is from another CA; not asking for ARI", "from", cur.Meta.Directory, "configured", m.Directory)
		ari = nil
	default:
		w, err := ri.RenewalInfo(ctx, cur.Leaf)
		switch {
		case err == nil:
			ari, fetched = w, true
			log.Debug("ARI window", "start", w.Start, "end", w.End)
		case errors.Is(err, ErrNoARI):
			ari = nil
		default:
			log.Warn("could not fetch the ARI window; using the last one recorded", "err", err)
		}
	}
	out.Decision = Decide(m.now(), cur.Leaf.NotBefore, cur.Leaf.NotAfter, ari, o.Policy)
	if o.Force && !out.Decision.Due {
		out.Decision = Decision{Due: true, At: m.now(), Reason: "forced"}
	}
	if !out.Decision.Due {
		if fetched && cur.HasMeta {
			// Record the window for `certs status`; skip if a run holds the lock.
			if l, err := TryLock(m.Layout.LockFile()); err == nil {
				if again, err := m.store().Load(name); err == nil && again.Meta.Serial == cur.Meta.Serial {
					again.Meta.ARI = ari
					if err := m.store().SaveMeta(name, again.Meta); err != nil {
						log.Warn("record ARI window", "err", err)
					}
				}
				m.unlock(l)
			}
		}
		log.Debug("not due", "next", out.Decision.At.UTC(), "reason", out.Decision.Reason)
		return out
	}
	if err := m.checkStaging(cur, o.BreakMyCerts); err != nil {
		out.Err = err
		return out
	}
	log.Info("renewal due", "reason", out.Decision.Reason)

	l, err := m.lock(ctx)
	if err != nil {
		out.Err = err
		return out
	}
	defer m.unlock(l)
	again, err := m.store().Load(name)
	if err != nil {
		out.Err = err
		return out
	}
	if again.Meta.Serial != cur.Meta.Serial {
		out.Cert = again
		out.Note = "already renewed by another run"
		log.Info(out.Note, "serial", again.Meta.Serial)
		return out
	}
	profile := o.Profile
	if profile == "" {
		profile = cur.Meta.Profile
	}
	req := Request{Domains: cur.Meta.Domains, Profile: profile}
	var issued *Issued
	if m.canReplace(cur, cur.Meta.Domains) {
		issued, err = m.Issuer.Renew(ctx, cur.Leaf, req)
	} else {
		issued, err = m.Issuer.Obtain(ctx, req)
	}
	if err != nil {
		out.Err = fmt.Errorf("renew %s: %w", name, err)
		return out
	}
	c, err := m.save(name, issued, req)
	if err != nil {
		out.Err = err
		return out
	}
	out.Renewed, out.Cert, out.Previous = true, c, cur
	log.Info("certificate renewed", "serial", c.Meta.Serial, "not_after", c.Leaf.NotAfter.UTC(), "replaces", issued.Replaces)
	return out
}

func (m *Manager) runHook(ctx context.Context, hook string, c *Cert) error {
	r := m.Runner
	if r == nil {
		r = ExecRunner{Timeout: 5 * time.Minute}
	}
	cmd := Command{
		Argv: []string{"sh", "-c", hook},
		Env: []string{
			"RENEWED_LINEAGE=" + c.Dir,
			"RENEWED_DOMAINS=" + strings.Join(c.Meta.Domains, " "),
			"REGCTL_CERT_NAME=" + c.Name,
		},
	}
	if _, err := r.Run(ctx, cmd); err != nil {
		return fmt.Errorf("deploy hook for %s: %w", c.Name, err)
	}
	m.log().Info("deploy hook ran", "cert", c.Name)
	return nil
}

// CertStatus is one certificate's state, for `certs status`.
type CertStatus struct {
	Name    string
	Domains []string
	Issuer  string
	Staging bool
	// NotAfter is the expiry; Left the time until then (negative once
	// expired).
	NotBefore, NotAfter time.Time
	Left                time.Duration
	Expired             bool
	// Warn is true when less than WarnBefore is left.
	Warn       bool
	WarnBefore time.Duration
	// Next is the renewal decision at the time of the status.
	Next Decision
	// ARI is the window recorded by the last renew run, if any.
	ARI *RenewalWindow
	// Err is set when the certificate could not be read.
	Err error
}

// StatusOptions are the settings of Manager.Status.
type StatusOptions struct {
	Policy Policy
	// WarnBefore is the warning threshold; 0 means WarnThreshold of each
	// certificate's lifetime.
	WarnBefore time.Duration
}

// Status reports every stored certificate at m.Now(). It reads only the
// disk (the ARI window is the one the last renew run recorded), so it
// works offline and fast enough for monitoring.
func (m *Manager) Status(o StatusOptions) ([]CertStatus, error) {
	names, err := m.store().List()
	if err != nil {
		return nil, err
	}
	now := m.now()
	var out []CertStatus
	for _, name := range names {
		c, err := m.store().Load(name)
		if err != nil {
			out = append(out, CertStatus{Name: name, Err: err})
			continue
		}
		s := CertStatus{
			Name:      name,
			Domains:   c.Meta.Domains,
			Issuer:    IssuerName(c.Leaf),
			Staging:   c.Staging(),
			NotBefore: c.Leaf.NotBefore,
			NotAfter:  c.Leaf.NotAfter,
			Left:      c.Leaf.NotAfter.Sub(now),
			ARI:       c.Meta.ARI,
		}
		s.Expired = !now.Before(c.Leaf.NotAfter)
		s.WarnBefore = o.WarnBefore
		if s.WarnBefore <= 0 {
			s.WarnBefore = WarnThreshold(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore))
		}
		s.Warn = s.Left < s.WarnBefore
		s.Next = Decide(now, c.Leaf.NotBefore, c.Leaf.NotAfter, c.Meta.ARI, o.Policy)
		out = append(out, s)
	}
	return out, nil
}

func sameNames(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
