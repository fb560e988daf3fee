package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/token"
)

// Ops are `regctl serve`'s operations settings: the metrics listener
// and the audit log. The failed-authentication limits live in
// Options.Token.
type Ops struct {
	// MetricsListen is the HOST:PORT of the Prometheus /metrics listener
	// ("" for none). Keep it off the address nginx proxies.
	MetricsListen string
	// CertsDir is ROOT/certs, whose live/*/fullchain.pem expiries are
	// exported ("" for none).
	CertsDir string
	// AuditLog is the file the JSON audit lines are appended to, "-" for
	// stdout, "" for none.
	AuditLog string
}

// addServeOpsFlags registers the hardening and operations flags of serve.
func addServeOpsFlags(fl *pflag.FlagSet) {
	fl.String("fail-limit-ip", config.DefaultFailLimitIP.String(),
		"failed password logins allowed per client address (IPv6: per /64) before 429: N/UNIT[,burst=B] with UNIT s, min or h, or off")
	fl.String("fail-limit-account", config.DefaultFailLimitAccount.String(),
		"failed password logins allowed per account before 429 for clients that have failed; clients with no failures still get in: N/UNIT[,burst=B], or off")
	fl.String("metrics-listen", "", "HOST:PORT for Prometheus /metrics, /livez and /readyz (e.g. 127.0.0.1:9101; not for nginx to expose); empty: off")
	fl.String("certs-dir", "", "ROOT/certs of the install: export the expiry of live/*/fullchain.pem as a metric")
	fl.String("audit-log", "", "append one JSON line per token decision to FILE (mode 0600), or - for stdout; empty: off")
}

// serveOpsOptions reads the flags addServeOpsFlags registered into o.
func serveOpsOptions(v *viper.Viper, o *Options) error {
	var err error
	if o.Token.FailLimitIP, err = config.ParseFailLimit(v.GetString("fail-limit-ip")); err != nil {
		return &cmdutil.FlagError{Err: fmt.Errorf("--fail-limit-ip: %w", err)}
	}
	if o.Token.FailLimitAccount, err = config.ParseFailLimit(v.GetString("fail-limit-account")); err != nil {
		return &cmdutil.FlagError{Err: fmt.Errorf("--fail-limit-account: %w", err)}
	}
	o.Ops = Ops{
		MetricsListen: v.GetString("metrics-listen"),
		CertsDir:      v.GetString("certs-dir"),
		AuditLog:      v.GetString("audit-log"),
	}
	if o.Ops.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(o.Ops.MetricsListen); err != nil {
			return cmdutil.FlagErrorf("--metrics-listen %q: want HOST:PORT", o.Ops.MetricsListen)
		}
		if o.Ops.MetricsListen == o.Listen {
			return cmdutil.FlagErrorf("--metrics-listen must differ from --listen: nginx proxies --listen to the internet")
		}
	}
	return nil
}

// startServeOps opens the audit log and starts the metrics listener. The
// returned stop, called after the token listener has shut down, stops the
// metrics listener and flushes and closes the audit log.
func startServeOps(ctx context.Context, o *Options, srv *token.Server, kr *token.KeyReloader, log *slog.Logger) (stop func(), err error) {
	var audit *token.AuditLog
	if o.Ops.AuditLog != "" {
		if audit, err = token.OpenAuditLog(o.Ops.AuditLog, log); err != nil {
			return nil, err
		}
		srv.SetAudit(audit)
		log.Info("audit log", "file", o.Ops.AuditLog)
	}
	closeAudit := func() {
		if audit != nil {
			if err := audit.Close(); err != nil {
				log.Error("close the audit log", "file", o.Ops.AuditLog, "err", err)
			}
		}
	}
	if o.Ops.MetricsListen == "" {
		return closeAudit, nil
	}
	reg := srv.Metrics(token.MetricsOptions{
		Version:             o.Version,
		SigningCertNotAfter: func() time.Time { return kr.Current().NotAfter() },
		CertsDir:            o.Ops.CertsDir,
	})
	ln, err := net.Listen("tcp", o.Ops.MetricsListen)
	if err != nil {
		closeAudit()
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	ms := token.NewHTTPServer(srv.MetricsHandler(reg), 30*time.Second)
	go func() {
		if err := ms.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = ms.Shutdown(sctx)
		closeAudit()
	}, nil
}
