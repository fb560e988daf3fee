// Package serve is `regctl serve`: the token server, with its metrics
// listener and audit log.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/token"
)

// Options are `regctl serve`'s settings.
type Options struct {
	IO    *cmdutil.IOStreams
	Now   func() time.Time
	Store func(context.Context) (store.Store, error)
	// LogHandler is the handler --log-level and --log-format ask for,
	// writing to w.
	LogHandler func(w io.Writer) slog.Handler
	// Version is regctl's, for the metrics.
	Version string

	Listen  string
	KeysDir string
	Token   config.TokenServer
	Ops     Ops // ops.go
}

// NewCmdServe builds `regctl serve`.
func NewCmdServe(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	d := config.TokenServerDefaults()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry token server",
		Long: `Run the Docker registry token server (distribution token-auth protocol).

Endpoints: /auth and /auth/token (GET with Basic auth, or OAuth2 POST),
/auth/jwks.json, /livez and /readyz. Every setting can also come from the
config file (--config) or a REGCTL_* environment variable, e.g.
REGCTL_ISSUER, REGCTL_RELOAD_INTERVAL.

The signing key is reloaded without a restart when the files in --keys
change (checked every --reload-interval; regctl keys rotate) or on SIGHUP.
A warning is logged at start and daily once the signing certificate has
less than 30 days left.

Failed password logins are limited per client address and per account
(--fail-limit-ip, --fail-limit-account): a limited request gets 429 with
Retry-After before any bcrypt. --metrics-listen serves Prometheus metrics on
an address of its own; --audit-log writes one JSON line per decision, read
with regctl audit tail.`,
		Example: `  regctl serve --listen 127.0.0.1:5001 --issuer regctl --service registry.example.com \
    --keys /etc/regctl/keys --store mongodb://127.0.0.1:27017/regctl`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := serveOptions(f)
			if err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.String("listen", "127.0.0.1:5001", "address to listen on")
	fl.String("issuer", "", "token issuer (the registry's auth.token.issuer)")
	fl.StringSlice("service", nil, "service name, the registry's auth.token.service; repeat it (or separate with commas) to serve several registries, the first answering requests that name none")
	fl.String("keys", "/etc/regctl/keys", "directory made by `regctl keys generate`")
	fl.Duration("token-lifetime", d.TokenLifetime, "access token lifetime")
	fl.Duration("refresh-lifetime", d.RefreshLifetime, "refresh token lifetime (0: until revoked)")
	fl.Duration("reload-interval", d.ReloadInterval, "how often rules reload and cached users expire: the bound on how long a store change takes to apply")
	fl.Duration("store-timeout", d.StoreTimeout, "timeout of each store query")
	fl.StringSlice("trusted-proxy", nil, "IP or CIDR of a reverse proxy whose X-Forwarded-For is trusted (repeatable)")
	fl.Bool("allow-anonymous", false, "decide requests without credentials by the rules (account \"\") instead of answering 401")
	fl.String("key-format", d.KeyFormat, "how tokens name their signing key: x5c (the certificate chain; every registry, verified with rootcertbundle) or jwks (the kid only; distribution 3 with auth.token.jwks and no rootcertbundle)")
	fl.Int("bcrypt-cost", d.BcryptCost, "bcrypt cost of the dummy comparison for unknown users until users have been read (then it follows their most common cost)")
	addServeOpsFlags(fl)
	fl.VisitAll(func(fl *pflag.Flag) { _ = f.Config.BindPFlag(fl.Name, fl) })
	return cmd
}

func serveOptions(f *cmdutil.Factory) (*Options, error) {
	v := f.Config
	o := &Options{IO: f.IO, Now: f.Now, Store: f.Store, Version: f.AppVersion, Listen: v.GetString("listen"), KeysDir: v.GetString("keys")}
	o.LogHandler = func(w io.Writer) slog.Handler { return cmdutil.NewLogHandler(f, w) }
	o.Token = config.TokenServer{
		Issuer:          v.GetString("issuer"),
		Services:        serviceList(v.GetStringSlice("service")),
		TokenLifetime:   v.GetDuration("token-lifetime"),
		RefreshLifetime: v.GetDuration("refresh-lifetime"),
		ReloadInterval:  v.GetDuration("reload-interval"),
		StoreTimeout:    v.GetDuration("store-timeout"),
		AllowAnonymous:  v.GetBool("allow-anonymous"),
		BcryptCost:      v.GetInt("bcrypt-cost"),
		KeyFormat:       v.GetString("key-format"),
	}
	for _, p := range v.GetStringSlice("trusted-proxy") {
		for _, s := range strings.Split(p, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			pfx, err := parsePrefix(s)
			if err != nil {
				return nil, cmdutil.FlagErrorf("--trusted-proxy %q: want an IP or CIDR", s)
			}
			o.Token.TrustedProxies = append(o.Token.TrustedProxies, pfx)
		}
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return nil, cmdutil.FlagErrorf("--listen %q: want HOST:PORT", o.Listen)
	}
	if err := serveOpsOptions(v, o); err != nil {
		return nil, err
	}
	if err := o.Token.Validate(); err != nil {
		return nil, &cmdutil.FlagError{Err: flagNames(err)}
	}
	return o, nil
}

// flagNames says the token server's settings errors in flag terms: each
// *config.SettingError's key is the flag's name.
func flagNames(err error) error {
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) {
		return err
	}
	var errs []error
	for _, e := range j.Unwrap() {
		if se := (*config.SettingError)(nil); errors.As(e, &se) {
			e = fmt.Errorf("--%s %w", se.Key, se.Err)
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// serveGCPercent is the token server's GOGC. Its live heap is small and
// every token allocates tens of KB, so at the default 100 the collector
// runs many times a second under load and its mark phases show in the
// latency tail; at 200 it runs half as often for a few MiB more memory
// (make bench compares the p99 with the floor's: docs/performance.md).
// GOGC in the environment wins.
const serveGCPercent = 200

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
}

func serveRun(ctx context.Context, o *Options) error {
	logs := newBufferedLog(o.IO.ErrOut)
	defer logs.Flush()
	log := slog.New(flushingHandler{o.LogHandler(logs), logs})
	tuneGC()
	ks, err := keys.Load(o.KeysDir, o.Now())
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	st, err := o.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close(context.WithoutCancel(ctx))
	srv, err := token.New(o.Token, st, ks, log, o.Now)
	if err != nil {
		return err
	}
	// `regctl keys rotate` needs no restart: the key is reloaded when the
	// files change (polled every reload interval) and on SIGHUP.
	keyReloader, err := token.NewKeyReloader(srv, o.KeysDir, ks)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv.Start(ctx)
	keyReloader.CheckExpiry()
	go keyReloader.Run(ctx, o.Token.ReloadInterval)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the signing keys", "dir", o.KeysDir)
				_ = keyReloader.Reload() // a failure is logged; the current key stays
			}
		}
	}()

	stopOps, err := startServeOps(ctx, o, srv, keyReloader, log) // metrics, audit log
	if err != nil {
		return err
	}
	defer stopOps()

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	log.Info("token server listening", "addr", ln.Addr().String(), "issuer", o.Token.Issuer, "services", o.Token.Services,
		"alg", string(ks.Algorithm), "kid", ks.KeyID, "signing_cert_not_after", ks.NotAfter().UTC().Format(time.RFC3339),
		"reload_interval", o.Token.ReloadInterval.String())
	stop := context.AfterFunc(ctx, func() { log.Info("shutting down") })
	defer stop()
	return token.ServeUntil(ctx, token.NewHTTPServer(keyReloader.Handler(srv.Handler()), 15*time.Second), ln, 10*time.Second)
}

// serviceList is --service's names: repeated, or comma-separated (as a
// list in the config file or REGCTL_SERVICE gives them), blanks dropped.
func serviceList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
