package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/lego"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/providers/http/webroot"
	"github.com/go-acme/lego/v4/registration"
)

// ACMEConfig configures a LegoIssuer.
type ACMEConfig struct {
	// Directory is the CA's ACME directory URL; "" means Let's Encrypt
	// production.
	Directory string
	// Email is the account's contact address (optional).
	Email string
	// Layout says where the account is stored (ROOT/certs/accounts).
	Layout Layout
	// Roots are the CAs trusted for the ACME API's TLS (a test CA's root,
	// say); nil means the system roots. Ignored when HTTPClient is set.
	Roots *x509.CertPool
	// HTTPClient, if set, is used for all requests to the CA.
	HTTPClient *http.Client
	// UserAgent is prepended to lego's User-Agent.
	UserAgent string
	// Challenge says how names are validated.
	Challenge ChallengeConfig
	// Logger receives progress; lego's own log lines go to it at debug
	// level (see NewLegoIssuer).
	Logger *slog.Logger
}

// LegoIssuer is the ACME Issuer, built on lego
// (github.com/go-acme/lego/v4) used as a library. The account key is
// created once and stored with its registration (see Layout.AccountDir);
// certificate keys are EC P-256. Nothing is contacted before the first
// call. Calls are serialised.
type LegoIssuer struct {
	cfg ACMEConfig
	log *slog.Logger
	mu  sync.Mutex
}

var (
	_ Issuer        = (*LegoIssuer)(nil)
	_ RenewalInfoer = (*LegoIssuer)(nil)
)

// legoLogger is where lego's package-level logger writes: the logger of the
// most recently created LegoIssuer.
var (
	legoLogger   atomic.Pointer[slog.Logger]
	legoLogSetup sync.Once
)

// NewLegoIssuer checks cfg and returns an issuer. lego logs through a
// package-level logger; the first call routes it, once, to the Logger of
// the most recent LegoIssuer (lego's [INFO] lines at debug level, [WARN]
// lines at warn level).
func NewLegoIssuer(cfg ACMEConfig) (*LegoIssuer, error) {
	if cfg.Directory == "" {
		cfg.Directory = LetsEncryptProduction
	}
	if _, err := cfg.Layout.AccountDir(cfg.Directory, cfg.Email); err != nil {
		return nil, err
	}
	if cfg.Challenge.Mode == "" {
		cfg.Challenge.Mode = ChallengeAuto
	}
	if cfg.Challenge.Webroot == "" {
		cfg.Challenge.Webroot = cfg.Layout.Webroot()
	}
	if cfg.Challenge.Mode == ChallengeDNS {
		if _, ok := DNSProviders[cfg.Challenge.DNSProvider]; !ok {
			return nil, fmt.Errorf("challenge dns needs a DNS provider: one of %s", strings.Join(DNSProviderNames(), ", "))
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	legoLogger.Store(logger)
	legoLogSetup.Do(func() { legolog.Logger = log.New(legoLogWriter{}, "", 0) })
	return &LegoIssuer{cfg: cfg, log: logger.With("ca", cfg.Directory)}, nil
}

// Directory is the CA's directory URL.
func (li *LegoIssuer) Directory() string { return li.cfg.Directory }

// Obtain implements Issuer.
func (li *LegoIssuer) Obtain(ctx context.Context, req Request) (*Issued, error) {
	return li.issue(ctx, req, "")
}

// Renew implements Issuer: the order's "replaces" field names old. If the
// CA answers that old was already replaced, the order is retried without.
func (li *LegoIssuer) Renew(ctx context.Context, old *x509.Certificate, req Request) (*Issued, error) {
	id, err := certificate.MakeARICertID(old)
	if err != nil {
		return nil, fmt.Errorf("ARI certificate ID: %w", err)
	}
	iss, err := li.issue(ctx, req, id)
	var replaced *acme.AlreadyReplacedError
	if errors.As(err, &replaced) {
		li.log.Warn("the CA says the certificate was already replaced; ordering without \"replaces\"", "replaces", id)
		return li.issue(ctx, req, "")
	}
	return iss, err
}

// RenewalInfo implements RenewalInfoer. The renewalInfo resource is a
// plain GET, so no account is loaded or created for it.
func (li *LegoIssuer) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (*RenewalWindow, error) {
	li.mu.Lock()
	defer li.mu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	client, err := li.connect(ctx, &account{key: key})
	if err != nil {
		return nil, err
	}
	info, err := client.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	if errors.Is(err, api.ErrNoARI) {
		return nil, fmt.Errorf("%s: %w", li.cfg.Directory, ErrNoARI)
	}
	if err != nil {
		return nil, fmt.Errorf("renewal information from %s: %w", li.cfg.Directory, err)
	}
	return &RenewalWindow{
		Start:          info.SuggestedWindow.Start.UTC(),
		End:            info.SuggestedWindow.End.UTC(),
		ExplanationURL: info.ExplanationURL,
		FetchedAt:      time.Now().UTC(),
		RetryAfter:     info.RetryAfter,
	}, nil
}

func (li *LegoIssuer) issue(ctx context.Context, req Request, replaces string) (*Issued, error) {
	if len(req.Domains) == 0 {
		return nil, errors.New("no names to obtain a certificate for")
	}
	li.mu.Lock()
	defer li.mu.Unlock()
	client, acct, err := li.session(ctx)
	if err != nil {
		return nil, err
	}
	mode, why, err := li.setupChallenge(ctx, client, req.Domains[0])
	if err != nil {
		return nil, err
	}
	li.log.Info("ordering certificate", "names", strings.Join(req.Domains, ","), "challenge", mode, "profile", req.Profile, "replaces", replaces)
	obtain := func() (*certificate.Resource, error) {
		return client.Certificate.Obtain(certificate.ObtainRequest{
			Domains:        req.Domains,
			Bundle:         true,
			Profile:        req.Profile,
			ReplacesCertID: replaces,
		})
	}
	res, err := obtain()
	if isProblem(err, "accountDoesNotExist") {
		// The CA forgot the account (a test CA restarted, or the account
		// was deactivated): register the stored key again, once, with a
		// new client (the old one signs with the stale account URL).
		li.log.Warn("the CA does not know the stored account; registering again", "account", acct.reg.URI)
		acct.reg = nil
		if client, err = li.connect(ctx, acct); err != nil {
			return nil, err
		}
		if err := li.register(client, acct); err != nil {
			return nil, err
		}
		if mode, why, err = li.setupChallenge(ctx, client, req.Domains[0]); err != nil {
			return nil, err
		}
		res, err = obtain()
	}
	if err != nil {
		err = fmt.Errorf("obtain certificate for %s from %s: %w", strings.Join(req.Domains, ", "), li.cfg.Directory, err)
		if mode == ChallengeStandalone && strings.Contains(err.Error(), "could not start HTTP server") {
			hint := "something else listens on the HTTP port; stop it, or let nginx serve the webroot and use --challenge webroot"
			if why != "" {
				hint += " (auto mode did not use the webroot: " + why + ")"
			}
			err = fmt.Errorf("%w; %s", err, hint)
		}
		return nil, err
	}
	return &Issued{
		Bundle:    Bundle{Fullchain: res.Certificate, PrivateKey: res.PrivateKey},
		CertURL:   res.CertURL,
		Challenge: mode,
		Replaces:  replaces,
	}, nil
}

// session loads (or creates) the account and connects a lego client for
// it, registering the account if needed.
func (li *LegoIssuer) session(ctx context.Context) (*lego.Client, *account, error) {
	dir, err := li.cfg.Layout.AccountDir(li.cfg.Directory, li.cfg.Email)
	if err != nil {
		return nil, nil, err
	}
	acct, err := loadAccount(dir, li.cfg.Email)
	if err != nil {
		return nil, nil, err
	}
	client, err := li.connect(ctx, acct)
	if err != nil {
		return nil, nil, err
	}
	if acct.reg == nil {
		if err := li.register(client, acct); err != nil {
			return nil, nil, err
		}
	}
	return client, acct, nil
}

// connect fetches the CA's directory and returns a lego client for user,
// whose requests end with ctx.
func (li *LegoIssuer) connect(ctx context.Context, user registration.User) (*lego.Client, error) {
	conf := lego.NewConfig(user)
	conf.CADirURL = li.cfg.Directory
	conf.HTTPClient = li.httpClient(ctx)
	conf.UserAgent = li.cfg.UserAgent
	conf.Certificate.KeyType = certcrypto.EC256
	conf.Certificate.Timeout = 2 * time.Minute
	client, err := lego.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("connect to ACME directory %s: %w", li.cfg.Directory, err)
	}
	return client, nil
}

func (li *LegoIssuer) register(client *lego.Client, acct *account) error {
	if client.GetExternalAccountRequired() {
		return fmt.Errorf("the CA at %s requires external account binding, which regctl does not support", li.cfg.Directory)
	}
	reg, err := client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		return fmt.Errorf("register ACME account at %s: %w", li.cfg.Directory, err)
	}
	acct.reg = reg
	if err := acct.save(li.cfg.Directory); err != nil {
		return err
	}
	li.log.Info("registered ACME account; using it accepts the CA's terms of service",
		"account", reg.URI, "terms", client.GetToSURL(), "dir", acct.dir)
	return nil
}

// setupChallenge installs the challenge provider and returns the mode
// used (auto resolved) and, when auto mode fell back to standalone, why.
func (li *LegoIssuer) setupChallenge(ctx context.Context, client *lego.Client, host string) (mode ChallengeMode, fallback string, err error) {
	c := li.cfg.Challenge
	mode, why := ResolveChallenge(ctx, c, host)
	if why != nil {
		fallback = why.Error()
	}
	if c.Mode == ChallengeAuto {
		if why != nil {
			li.log.Info("using the standalone HTTP-01 server", "reason", why.Error())
		} else {
			li.log.Info("nginx serves the webroot; using it for HTTP-01", "webroot", c.Webroot)
		}
	}
	switch mode {
	case ChallengeStandalone:
		srv := http01.NewProviderServer(c.HTTPAddress, strconv.Itoa(c.port()))
		if err := client.Challenge.SetHTTP01Provider(srv); err != nil {
			return "", "", fmt.Errorf("set up standalone HTTP-01: %w", err)
		}
	case ChallengeWebroot:
		p, err := webroot.NewHTTPProvider(c.Webroot)
		if err != nil {
			return "", "", fmt.Errorf("webroot %s: %w", c.Webroot, err)
		}
		if err := client.Challenge.SetHTTP01Provider(p); err != nil {
			return "", "", fmt.Errorf("set up webroot HTTP-01: %w", err)
		}
	case ChallengeDNS:
		p, err := NewDNSProvider(c.DNSProvider)
		if err != nil {
			return "", "", err
		}
		var opts []dns01.ChallengeOption
		if len(c.DNSResolvers) > 0 {
			// Check propagation on the given resolvers only, not on the
			// zone's authoritative servers (split horizon, test DNS).
			opts = append(opts,
				dns01.AddRecursiveNameservers(c.DNSResolvers),
				dns01.RecursiveNSsPropagationRequirement(),
				dns01.DisableAuthoritativeNssPropagationRequirement())
		}
		if err := client.Challenge.SetDNS01Provider(p, opts...); err != nil {
			return "", "", fmt.Errorf("set up DNS-01: %w", err)
		}
	default:
		return "", "", fmt.Errorf("unknown challenge mode %q", mode)
	}
	return mode, fallback, nil
}

// httpClient returns the client for the ACME API: the configured one, or
// one trusting cfg.Roots; every request carries ctx, so cancelling ctx
// aborts lego's calls (lego's API takes no context).
func (li *LegoIssuer) httpClient(ctx context.Context) *http.Client {
	base := li.cfg.HTTPClient
	if base == nil {
		tr := &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			TLSClientConfig:       &tls.Config{RootCAs: li.cfg.Roots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:     true,
		}
		base = &http.Client{Timeout: 2 * time.Minute, Transport: tr}
	}
	c := *base
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = ctxTransport{ctx: ctx, rt: rt}
	return &c
}

// ctxTransport makes every request carry ctx.
type ctxTransport struct {
	ctx context.Context
	rt  http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := t.rt.RoundTrip(req.WithContext(t.ctx))
	// net/http may still hand back a response that raced the
	// cancellation; lego would read its (empty) body as the answer.
	if err == nil && t.ctx.Err() != nil {
		resp.Body.Close()
		return nil, t.ctx.Err()
	}
	return resp, err
}

// isProblem reports whether err is an ACME problem of the given type (the
// part after "urn:ietf:params:acme:error:").
func isProblem(err error, typ string) bool {
	var p *acme.ProblemDetails
	return errors.As(err, &p) && p.Type == "urn:ietf:params:acme:error:"+typ
}

// legoLogWriter turns lego's log lines into slog records.
type legoLogWriter struct{}

func (legoLogWriter) Write(p []byte) (int, error) {
	l := legoLogger.Load()
	if l == nil {
		return len(p), nil
	}
	msg := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(msg, "[WARN] "):
		level, msg = slog.LevelWarn, strings.TrimPrefix(msg, "[WARN] ")
	case strings.HasPrefix(msg, "[INFO] "):
		msg = strings.TrimPrefix(msg, "[INFO] ")
	}
	l.Log(context.Background(), level, msg, "component", "lego")
	return len(p), nil
}
