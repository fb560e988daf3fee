// Package certs is `regctl certs`: obtaining and renewing the TLS
// certificates with ACME, their status, and DH parameters.
package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	regcerts "github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// NewCmdCerts builds `regctl certs`.
func NewCmdCerts(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Obtain and renew the TLS certificates (ACME, Let's Encrypt), dhparams, expiry status",
		Long: `Manage the TLS certificates nginx serves, through ACME (Let's Encrypt by
default; lego is used as a library).

Lifecycle:
  1. First issuance, before nginx runs: regctl certs obtain NAME answers the
     HTTP-01 challenge with its own server on port 80 (standalone).
  2. Renewal, twice a day from cron: regctl certs renew asks the CA when to
     renew (ARI, RFC 9773), renews through nginx's webroot while nginx keeps
     serving, then checks and reloads nginx (no downtime).
  3. Monitoring: regctl certs status exits non-zero when a certificate has
     expired or is about to.

Files, under --root (default /opt/regctl):
  certs/live/NAME/fullchain.pem, privkey.pem (0600), meta.json
  certs/accounts/CAHOST/EMAIL/account.key (0600), account.json
  certs/dhparams.pem, acme-webroot/, compose.yaml (nginx is its "nginx" service)

The settings of obtain and renew may also come from the config file or
REGCTL_* environment variables: regctl.yaml's root, acme.email and acme.ca
(REGCTL_ACME_EMAIL, REGCTL_ACME_CA) set --root, --acme-email and
--acme-directory, and the others' keys are their flag names (staging,
cert-profile, challenge, ...).`,
	}
	cmd.AddCommand(
		NewCmdObtain(f, nil),
		NewCmdRenew(f, nil),
		NewCmdStatus(f, nil),
		NewCmdDHParams(f, nil),
	)
	return cmd
}

// certsConfigKeys are the certs flags that may also come from the config
// file or REGCTL_* variables. Per-run switches (--force, --json, ...) are
// not among them.
var certsConfigKeys = []string{
	"root", "acme-email", "acme-directory", "staging", "cert-profile", "acme-ca-roots",
	"challenge", "http-address", "http-port", "webroot", "dns-provider", "dns-resolver",
	"compose-file", "nginx-service", "deploy-hook",
}

// bindCertsConfig binds the running command's flags to the config keys.
// It runs when the command runs, not when it is built, so that a key
// shared with another command's flag (root) reads this command's flag.
func bindCertsConfig(f *cmdutil.Factory, cmd *cobra.Command) {
	for _, k := range certsConfigKeys {
		if fl := cmd.Flags().Lookup(k); fl != nil {
			_ = f.Config.BindPFlag(k, fl)
		}
	}
}

func addRootFlag(fs *pflag.FlagSet) {
	fs.String("root", regcerts.DefaultRoot, "install root: certificates live in ROOT/certs")
}

// ACMEOptions are the settings `certs obtain` and `certs renew` share.
type ACMEOptions struct {
	Root string
	// Email is the ACME account's contact (optional).
	Email string
	// Directory is the ACME directory URL; Staging marks it as a staging
	// CA (--staging).
	Directory string
	Staging   bool
	// CARoots is a PEM file of extra roots trusted for the ACME API.
	CARoots string
	// Profile is the certificate profile ("" for the CA's default or, on
	// renewal, the one recorded).
	Profile   string
	Challenge regcerts.ChallengeConfig
	// ComposeFile and NginxService locate nginx for the reload.
	ComposeFile  string
	NginxService string
	LockWait     time.Duration
	BreakMyCerts bool
	// Version is regctl's, for the ACME User-Agent.
	Version string

	// Issuer and Reloader replace the lego issuer and the docker compose
	// reloader (tests).
	Issuer   regcerts.Issuer
	Reloader regcerts.Reloader
}

func addACMEFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	addRootFlag(fs)
	fs.String("acme-email", "", "contact email of the ACME account (optional; Let's Encrypt sends no expiry mail any more)")
	fs.String("acme-directory", "", "ACME directory URL (default: Let's Encrypt production, or staging with --staging)")
	fs.Bool("staging", false, "use Let's Encrypt's staging CA; with --acme-directory, mark that CA as a staging (test) CA")
	fs.String("acme-ca-roots", "", "PEM file of extra root certificates to trust for the ACME API (a private or test CA)")
	fs.String("cert-profile", "", "certificate profile: "+strings.Join(regcerts.KnownProfiles, ", ")+" (default: the CA's default; renew keeps the recorded one)")
	fs.String("challenge", "auto", "how to prove control of the names: auto (webroot if nginx serves it, else standalone), standalone, webroot, dns")
	fs.String("http-address", "", "address the standalone HTTP-01 server binds (default: all)")
	fs.Int("http-port", 80, "port of the standalone HTTP-01 server, and where auto mode looks for nginx")
	fs.String("webroot", "", "directory nginx serves /.well-known/acme-challenge/ from (default ROOT/acme-webroot)")
	fs.String("dns-provider", "", "DNS-01 provider, configured by its environment variables: "+strings.Join(regcerts.DNSProviderNames(), ", "))
	fs.StringSlice("dns-resolver", nil, "resolver (host:port) to check DNS-01 propagation with (repeatable; default /etc/resolv.conf)")
	fs.String("compose-file", "", "docker compose file of the nginx service (default ROOT/compose.yaml)")
	fs.String("nginx-service", "nginx", "compose service running nginx")
	fs.Duration("lock-wait", regcerts.DefaultLockWait, "how long to wait for another regctl certs run to finish")
	fs.Bool("break-my-certs", false, "allow replacing a production certificate with a staging one")
	_ = cmd.RegisterFlagCompletionFunc("cert-profile", cobra.FixedCompletions(regcerts.KnownProfiles, cobra.ShellCompDirectiveNoFileComp))
	modes := make([]string, len(regcerts.ChallengeModes))
	for i, m := range regcerts.ChallengeModes {
		modes[i] = string(m)
	}
	_ = cmd.RegisterFlagCompletionFunc("challenge", cobra.FixedCompletions(modes, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("dns-provider", cobra.FixedCompletions(regcerts.DNSProviderNames(), cobra.ShellCompDirectiveNoFileComp))
}

// fromRegctlYAML is the value of a flag that regctl.yaml sets under
// another key: the flag if given, else regctl.yaml's key (from the file or
// the environment), else the flag's own key in the config file (config.
// Renamed: deprecated) or its default.
func fromRegctlYAML(cmd *cobra.Command, v *viper.Viper, flag, key string) string {
	if !cmd.Flags().Changed(flag) && v.IsSet(key) {
		return v.GetString(key)
	}
	return v.GetString(flag)
}

// acmeOptions reads the shared flags (through the config).
func acmeOptions(f *cmdutil.Factory, cmd *cobra.Command) (ACMEOptions, error) {
	v := f.Config
	o := ACMEOptions{
		Version:      f.AppVersion,
		Root:         v.GetString("root"),
		Email:        fromRegctlYAML(cmd, v, "acme-email", "acme.email"),
		Directory:    fromRegctlYAML(cmd, v, "acme-directory", "acme.ca"),
		Staging:      v.GetBool("staging"),
		CARoots:      v.GetString("acme-ca-roots"),
		Profile:      v.GetString("cert-profile"),
		ComposeFile:  v.GetString("compose-file"),
		NginxService: v.GetString("nginx-service"),
	}
	o.LockWait, _ = cmd.Flags().GetDuration("lock-wait")
	o.BreakMyCerts, _ = cmd.Flags().GetBool("break-my-certs")
	if o.Root == "" {
		return o, cmdutil.FlagErrorf("--root must not be empty")
	}
	if o.Directory == "" {
		o.Directory = regcerts.LetsEncryptProduction
		if o.Staging {
			o.Directory = regcerts.LetsEncryptStaging
		}
	} else if !strings.HasPrefix(o.Directory, "https://") && !strings.HasPrefix(o.Directory, "http://") {
		return o, cmdutil.FlagErrorf("--acme-directory %q: want an https:// URL", o.Directory)
	}
	if err := regcerts.CheckProfile(o.Profile); err != nil {
		return o, &cmdutil.FlagError{Err: fmt.Errorf("--cert-profile: %w", err)}
	}
	mode, err := regcerts.ParseChallengeMode(v.GetString("challenge"))
	if err != nil {
		return o, &cmdutil.FlagError{Err: fmt.Errorf("--challenge: %w", err)}
	}
	o.Challenge = regcerts.ChallengeConfig{
		Mode:         mode,
		HTTPAddress:  v.GetString("http-address"),
		HTTPPort:     v.GetInt("http-port"),
		Webroot:      v.GetString("webroot"),
		DNSProvider:  v.GetString("dns-provider"),
		DNSResolvers: v.GetStringSlice("dns-resolver"),
	}
	if p := o.Challenge.HTTPPort; p < 1 || p > 65535 {
		return o, cmdutil.FlagErrorf("--http-port %d: want 1-65535", p)
	}
	if mode == regcerts.ChallengeDNS {
		if _, ok := regcerts.DNSProviders[o.Challenge.DNSProvider]; !ok {
			return o, cmdutil.FlagErrorf("--challenge dns needs --dns-provider: one of %s", strings.Join(regcerts.DNSProviderNames(), ", "))
		}
	}
	layout := regcerts.Layout{Root: o.Root}
	if o.Challenge.Webroot == "" {
		o.Challenge.Webroot = layout.Webroot()
	}
	if o.ComposeFile == "" {
		o.ComposeFile = layout.ComposeFile()
	}
	return o, nil
}

// manager builds the regcerts.Manager: the lego issuer unless o.Issuer is
// set, the docker compose reloader unless o.Reloader is set.
func (o *ACMEOptions) manager(now func() time.Time, logger *slog.Logger) (*regcerts.Manager, error) {
	layout := regcerts.Layout{Root: o.Root}
	iss := o.Issuer
	if iss == nil {
		var roots *x509.CertPool
		if o.CARoots != "" {
			data, err := os.ReadFile(o.CARoots)
			if err != nil {
				return nil, fmt.Errorf("--acme-ca-roots: %w", err)
			}
			if roots, err = x509.SystemCertPool(); err != nil {
				roots = x509.NewCertPool()
			}
			if !roots.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("--acme-ca-roots: no PEM certificate in %s", o.CARoots)
			}
		}
		li, err := regcerts.NewLegoIssuer(regcerts.ACMEConfig{
			Directory: o.Directory,
			Email:     o.Email,
			Layout:    layout,
			Roots:     roots,
			UserAgent: "regctl/" + o.Version,
			Challenge: o.Challenge,
			Logger:    logger,
		})
		if err != nil {
			return nil, err
		}
		iss = li
	}
	rl := o.Reloader
	if rl == nil {
		rl = regcerts.ComposeReloader(regcerts.ExecRunner{}, o.ComposeFile, o.NginxService)
	}
	return &regcerts.Manager{
		Layout:    layout,
		Issuer:    iss,
		Directory: o.Directory,
		Staging:   o.Staging,
		Reloader:  rl,
		Logger:    logger,
		Now:       now,
		LockWait:  o.LockWait,
	}, nil
}

// stagingHint adds the flag that overrides the staging refusal.
func stagingHint(err error) error {
	if errors.Is(err, regcerts.ErrStagingOverProduction) {
		return fmt.Errorf("%w; pass --break-my-certs to do it anyway", err)
	}
	return err
}

// ObtainOptions are `regctl certs obtain`'s settings.
type ObtainOptions struct {
	cmdutil.Deps

	ACMEOptions
	Names    []string
	CertName string
	Force    bool
}

// NewCmdObtain builds `regctl certs obtain`.
func NewCmdObtain(f *cmdutil.Factory, runF func(context.Context, *ObtainOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "obtain NAME...",
		Short: "Obtain a certificate for one or more names",
		Long: `Obtain one certificate covering every NAME (DNS names or IP addresses) and
store it in ROOT/certs/live/FIRST-NAME/ (fullchain.pem, privkey.pem), where
nginx's configuration expects it. The key is EC P-256. The ACME account key
is created once (ROOT/certs/accounts/...) and reused.

Challenges (--challenge):
  auto        webroot when nginx serves ROOT/acme-webroot on --http-port,
              standalone otherwise (the first issuance, or nginx is down)
  standalone  regctl answers HTTP-01 itself on --http-port (nginx must be down)
  webroot     write the answer into --webroot for nginx to serve
  dns         DNS-01 through --dns-provider, configured by its environment
              variables: exec (EXEC_PATH: a program called as
              "PROGRAM present|cleanup FQDN VALUE") or httpreq
              (HTTPREQ_ENDPOINT); needed for wildcard names

If a valid certificate for exactly these names exists and is not due for
renewal, nothing is done (--force obtains anyway). A production
certificate is never replaced by a staging one (--break-my-certs).
After a webroot or DNS issuance nginx is checked and reloaded.`,
		Example: `  # First issuance on a fresh host (nginx not running yet)
  regctl certs obtain registry.example.com --acme-email ops@example.com

  # Try the staging CA first
  regctl certs obtain registry.example.com --staging

  # Six-day certificates, validated through the running nginx
  regctl certs obtain registry.example.com --cert-profile shortlived --challenge webroot

  # Wildcard through a DNS hook script
  EXEC_PATH=/usr/local/bin/dns-hook regctl certs obtain '*.example.com' example.com --challenge dns --dns-provider exec`,
		Args: cmdutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bindCertsConfig(f, cmd)
			acme, err := acmeOptions(f, cmd)
			if err != nil {
				return err
			}
			o := &ObtainOptions{ACMEOptions: acme}
			o.Names, err = regcerts.NormalizeNames(args)
			if err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			if acme.Challenge.Mode != regcerts.ChallengeDNS && slices.ContainsFunc(o.Names, regcerts.IsWildcard) {
				return cmdutil.FlagErrorf("wildcard names need --challenge dns")
			}
			o.CertName, _ = cmd.Flags().GetString("cert-name")
			o.Force, _ = cmd.Flags().GetBool("force")
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return obtainRun(cmd.Context(), o)
		},
	}
	addACMEFlags(cmd)
	cmd.Flags().String("cert-name", "", "directory name under ROOT/certs/live (default: the first NAME)")
	cmd.Flags().Bool("force", false, "obtain a new certificate even if a valid one exists")
	return cmd
}

func obtainRun(ctx context.Context, o *ObtainOptions) error {
	logger := o.Logger()
	m, err := o.manager(o.Now, logger)
	if err != nil {
		return err
	}
	res, err := m.Obtain(ctx, regcerts.ObtainOptions{
		Names:        o.Names,
		CertName:     o.CertName,
		Profile:      o.Profile,
		Force:        o.Force,
		BreakMyCerts: o.BreakMyCerts,
	})
	if res == nil {
		return stagingHint(err)
	}
	w := o.IO.Out
	c := res.Cert
	if !res.Obtained {
		fmt.Fprintf(w, "Kept the certificate for %s: %s\n", strings.Join(c.Meta.Domains, ", "), res.Reason)
		fmt.Fprintln(w, "Run with --force to obtain a new one anyway.")
		return nil
	}
	verb := "Obtained"
	if res.Previous != nil {
		verb = "Replaced"
	}
	fmt.Fprintf(w, "%s the certificate for %s (challenge %s", verb, strings.Join(c.Meta.Domains, ", "), res.Challenge)
	if c.Meta.Profile != "" {
		fmt.Fprintf(w, ", profile %s", c.Meta.Profile)
	}
	fmt.Fprintln(w, ")")
	printCertFiles(w, o.Deps, m.Layout, c)
	switch {
	case err != nil:
		fmt.Fprintf(w, "  %-12s NOT reloaded: %v\n", "nginx", cmdutil.OneLine(err))
		return cmdutil.ErrSilent
	case res.Reloaded:
		fmt.Fprintf(w, "  %-12s configuration OK, reloaded\n", "nginx")
	case res.ReloadErr != nil:
		fmt.Fprintf(w, "  %-12s not reloaded (not running yet?): %v\n", "nginx", cmdutil.OneLine(res.ReloadErr))
	default:
		fmt.Fprintf(w, "  %-12s not reloaded (standalone challenge: nginx is not running)\n", "nginx")
	}
	return nil
}

func printCertFiles(w io.Writer, d cmdutil.Deps, l regcerts.Layout, c *regcerts.Cert) {
	now := d.Now()
	issuer := c.Meta.Issuer
	if c.Staging() {
		issuer += " (staging)"
	}
	fmt.Fprintf(w, "  %-12s %s\n", "certificate", l.Fullchain(c.Name))
	fmt.Fprintf(w, "  %-12s %s\n", "private key", l.Privkey(c.Name))
	fmt.Fprintf(w, "  %-12s %s\n", "issuer", issuer)
	fmt.Fprintf(w, "  %-12s %s\n", "serial", c.Meta.Serial)
	fmt.Fprintf(w, "  %-12s %s\n", "valid until", cmdutil.FormatDate(c.Leaf.NotAfter, now, d.Loc()))
}

// RenewOptions are `regctl certs renew`'s settings.
type RenewOptions struct {
	cmdutil.Deps

	ACMEOptions
	// Names limits the run to these certificates (directory names).
	Names []string
	// Days, when positive, renews certificates with fewer days left,
	// instead of the CA's ARI window or a third of the lifetime.
	Days int
	// Interval is the time until the next scheduled run.
	Interval time.Duration
	Force    bool
	// NoRandomSleep skips the random delay of up to MaxDelay that a run
	// without a terminal on stdout (cron) starts with.
	NoRandomSleep bool
	MaxDelay      time.Duration
	DeployHook    string
	Quiet         bool
	// Sleep waits d or until ctx ends (tests replace it).
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultRenewDelay is the largest random delay of a renew run from cron.
const DefaultRenewDelay = 8 * time.Minute

// NewCmdRenew builds `regctl certs renew`.
func NewCmdRenew(f *cmdutil.Factory, runF func(context.Context, *RenewOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "renew [NAME...]",
		Short: "Renew the certificates that are due (run from cron twice a day)",
		Long: `Renew every stored certificate (or the NAMEs given) that is due, without
downtime: validation goes through nginx's webroot while nginx keeps serving,
then nginx's configuration is tested and nginx reloaded gracefully.

When is a certificate due? regctl asks the CA for its renewal window (ACME
Renewal Information, RFC 9773) first. A window that opens before the next
scheduled run (--interval from now) counts as due now, so a window is never
missed between two runs. Without a window (the CA offers none), it renews
when a third of the lifetime remains. --days N renews when fewer than N
days remain instead; a window the CA has already opened still counts. The
new order names the old certificate as replaced (ARI "replaces").

Run from cron, without a terminal on stdout, renew first waits a random
time of up to 8 minutes so that not every host asks the CA at the same
moment (--no-random-sleep skips it). A lock (ROOT/certs/.lock) keeps two
runs from overlapping. Exit status: 0 when nothing was due or every renewal
succeeded; 1 when a renewal, the nginx test or reload, or the deploy hook
failed. A production certificate is never replaced by a staging one.

After nginx was reloaded, --deploy-hook runs with sh -c once per renewed
certificate, with RENEWED_LINEAGE (its directory), RENEWED_DOMAINS and
REGCTL_CERT_NAME set.`,
		Example: `  # /etc/cron.d/regctl-certs: silent unless something was renewed or failed
  17 3,15 * * * root /usr/local/bin/regctl certs renew --root /opt/regctl -q

  # By hand, now
  regctl certs renew --no-random-sleep

  # Renew everything with fewer than 30 days left
  regctl certs renew --days 30`,
		RunE: func(cmd *cobra.Command, args []string) error {
			bindCertsConfig(f, cmd)
			acme, err := acmeOptions(f, cmd)
			if err != nil {
				return err
			}
			o := &RenewOptions{ACMEOptions: acme, Names: args, MaxDelay: DefaultRenewDelay, Sleep: sleepCtx}
			fl := cmd.Flags()
			o.Days, _ = fl.GetInt("days")
			o.Interval, _ = fl.GetDuration("interval")
			o.Force, _ = fl.GetBool("force")
			o.NoRandomSleep, _ = fl.GetBool("no-random-sleep")
			o.Quiet, _ = fl.GetBool("quiet")
			o.DeployHook = f.Config.GetString("deploy-hook")
			if o.Days < 0 {
				return cmdutil.FlagErrorf("--days %d: want a positive number of days", o.Days)
			}
			if o.Interval <= 0 {
				return cmdutil.FlagErrorf("--interval %s: want a positive duration", o.Interval)
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return renewRun(cmd.Context(), o)
		},
	}
	addACMEFlags(cmd)
	fl := cmd.Flags()
	fl.Int("days", 0, "renew when fewer than N days remain, instead of the ARI window or a third of the lifetime")
	fl.Duration("interval", regcerts.DefaultInterval, "time between two scheduled runs: an ARI window opening before the next run is due now")
	fl.Bool("force", false, "renew every selected certificate, due or not")
	fl.Bool("no-random-sleep", false, "do not wait a random delay first (it applies only without a terminal on stdout)")
	fl.String("deploy-hook", "", "shell command run after nginx was reloaded, once per renewed certificate")
	fl.BoolP("quiet", "q", false, "print only renewed and failed certificates (for cron)")
	return cmd
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func renewRun(ctx context.Context, o *RenewOptions) error {
	logger := o.Logger()
	if !o.NoRandomSleep && !o.IO.IsStdoutTTY() && o.MaxDelay > 0 {
		d := rand.N(o.MaxDelay)
		logger.Debug("waiting a random delay before renewing, to spread the load on the CA (--no-random-sleep skips it)", "delay", d.Round(time.Second))
		if err := o.Sleep(ctx, d); err != nil {
			return err
		}
	}
	m, err := o.manager(o.Now, logger)
	if err != nil {
		return err
	}
	res, err := m.Renew(ctx, regcerts.RenewOptions{
		Names:        o.Names,
		Policy:       regcerts.Policy{RenewBefore: time.Duration(o.Days) * 24 * time.Hour, Interval: o.Interval},
		Force:        o.Force,
		Profile:      o.Profile,
		BreakMyCerts: o.BreakMyCerts,
		DeployHook:   o.DeployHook,
	})
	if res == nil {
		return err
	}
	w := o.IO.Out
	if len(res.Outcomes) == 0 {
		fmt.Fprintf(o.IO.ErrOut, "No certificates in %s; obtain one with: regctl certs obtain NAME\n", m.Layout.LiveDir())
		return err
	}
	now := o.Now()
	for _, out := range res.Outcomes {
		switch {
		case out.Err != nil:
			msg := cmdutil.OneLine(stagingHint(out.Err)).Error()
			fmt.Fprintf(w, "%s: FAILED: %s\n", out.Name, strings.TrimPrefix(msg, out.Name+": "))
		case out.Renewed:
			fmt.Fprintf(w, "%s: renewed (%s); serial %s, valid until %s\n", out.Name, out.Decision.Reason,
				out.Cert.Meta.Serial, cmdutil.FormatDate(out.Cert.Leaf.NotAfter, now, o.Loc()))
		case o.Quiet:
		case out.Note != "":
			fmt.Fprintf(w, "%s: %s\n", out.Name, out.Note)
		default:
			fmt.Fprintf(w, "%s: not due; next renewal %s (%s)\n", out.Name, cmdutil.FormatDate(out.Decision.At, now, o.Loc()), out.Decision.Reason)
		}
	}
	switch {
	case res.Reloaded:
		fmt.Fprintln(w, "nginx: configuration OK, reloaded")
	case res.ReloadErr != nil:
		fmt.Fprintf(w, "nginx: NOT reloaded: %v\n", cmdutil.OneLine(res.ReloadErr))
	}
	for _, e := range res.HookErrs {
		fmt.Fprintf(w, "FAILED: %v\n", cmdutil.OneLine(e))
	}
	if err != nil {
		return cmdutil.ErrSilent
	}
	return nil
}

// StatusOptions are `regctl certs status`'s settings.
type StatusOptions struct {
	cmdutil.Deps

	Root string
	// WarnDays, when positive, is the warning threshold in days; zero
	// means 14 days, or a sixth of the lifetime if that is less.
	WarnDays int
	Days     int
	Interval time.Duration
	// Output is table, json or yaml.
	Output string
}

// NewCmdStatus builds `regctl certs status`.
func NewCmdStatus(f *cmdutil.Factory, runF func(context.Context, *StatusOptions) error) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the certificates' expiry and next renewal; fail when one is about to expire",
		Long: `Print every stored certificate: its name, issuer, expiry, days left, the
next planned renewal and the CA's renewal window (ARI, as recorded by the
last renew run). Reads only local files, so it is fast and works offline.

Exit status, for monitoring (Let's Encrypt no longer sends expiry mail):
  0  every certificate is valid and outside the warning window
  1  a certificate has expired, is inside the warning window or cannot be
     read, or there is none (the details go to stderr)

The warning window is --warn-days days, by default 14 days or a sixth of
the certificate's lifetime if that is shorter (one day for a six-day
certificate), so a certificate renewed on time never warns.`,
		Example: `  regctl certs status
  regctl certs status --warn-days 20 || mail -s "certificate expiring" ops@example.com
  regctl certs status -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bindCertsConfig(f, cmd)
			fl := cmd.Flags()
			o := &StatusOptions{Root: f.Config.GetString("root"), Output: output}
			o.WarnDays, _ = fl.GetInt("warn-days")
			o.Days, _ = fl.GetInt("days")
			o.Interval, _ = fl.GetDuration("interval")
			if json, _ := fl.GetBool("json"); json {
				fmt.Fprintln(f.IO.ErrOut, "warning: certs status --json is deprecated and goes in the next release: use -o json")
				o.Output = cmdutil.FormatJSON
			}
			if err := cmdutil.CheckOutput(o.Output, statusFormats...); err != nil {
				return err
			}
			if o.WarnDays < 0 || o.Days < 0 {
				return cmdutil.FlagErrorf("--warn-days and --days must not be negative")
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return statusRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	addRootFlag(fl)
	fl.Int("warn-days", 0, "warn (exit 1) when fewer than N days remain (default: 14, or a sixth of the lifetime if shorter)")
	fl.Int("days", 0, "as renew --days, for the NEXT RENEWAL column")
	fl.Duration("interval", regcerts.DefaultInterval, "as renew --interval, for the NEXT RENEWAL column")
	cmdutil.AddOutputFlag(cmd, &output, statusFormats...)
	// Before -o: every other command's output flag.
	fl.Bool("json", false, "deprecated: use -o json")
	_ = fl.MarkHidden("json")
	return cmd
}

var statusFormats = []string{cmdutil.FormatTable, cmdutil.FormatJSON}

// certStatusJSON is one certificate in `certs status -o json`.
type certStatusJSON struct {
	Name        string                  `json:"name"`
	Domains     []string                `json:"domains,omitempty"`
	Issuer      string                  `json:"issuer,omitempty"`
	Staging     bool                    `json:"staging"`
	NotBefore   *time.Time              `json:"not_before,omitempty"`
	NotAfter    *time.Time              `json:"not_after,omitempty"`
	DaysLeft    *float64                `json:"days_left,omitempty"`
	Expired     bool                    `json:"expired"`
	Warning     bool                    `json:"warning"`
	WarnDays    float64                 `json:"warn_days,omitempty"`
	RenewalDue  bool                    `json:"renewal_due"`
	NextRenewal *time.Time              `json:"next_renewal,omitempty"`
	Reason      string                  `json:"renewal_reason,omitempty"`
	ARI         *regcerts.RenewalWindow `json:"ari,omitempty"`
	Error       string                  `json:"error,omitempty"`
}

func statusRun(_ context.Context, o *StatusOptions) error {
	m := &regcerts.Manager{Layout: regcerts.Layout{Root: o.Root}, Now: o.Now}
	st, err := m.Status(regcerts.StatusOptions{
		Policy:     regcerts.Policy{RenewBefore: time.Duration(o.Days) * 24 * time.Hour, Interval: o.Interval},
		WarnBefore: time.Duration(o.WarnDays) * 24 * time.Hour,
	})
	if err != nil {
		return err
	}
	now := o.Now()
	if o.Output != cmdutil.FormatTable {
		out := make([]certStatusJSON, 0, len(st))
		for _, s := range st {
			j := certStatusJSON{Name: s.Name}
			if s.Err != nil {
				j.Error = s.Err.Error()
			} else {
				nb, na, next := s.NotBefore.UTC(), s.NotAfter.UTC(), s.Next.At.UTC().Truncate(time.Second)
				left := float64(int64(s.Left.Hours()*100/24)) / 100
				j.Domains, j.Issuer, j.Staging = s.Domains, s.Issuer, s.Staging
				j.NotBefore, j.NotAfter, j.DaysLeft = &nb, &na, &left
				j.Expired, j.Warning, j.WarnDays = s.Expired, s.Warn, s.WarnBefore.Hours()/24
				j.RenewalDue, j.NextRenewal, j.Reason, j.ARI = s.Next.Due, &next, s.Next.Reason, s.ARI
			}
			out = append(out, j)
		}
		if err := cmdutil.WriteJSON(o.IO.Out, out); err != nil {
			return err
		}
	} else if len(st) > 0 {
		if err := statusTable(o.Deps, st).Render(o.IO.Out); err != nil {
			return err
		}
	}
	var problems []string
	if pending, since := m.ReloadPending(); pending {
		problems = append(problems, fmt.Sprintf("nginx was not reloaded after the certificates changed (%s) and may serve old ones; run regctl certs renew to retry",
			cmdutil.RelTime(since, now)))
	}
	if len(st) == 0 {
		problems = append(problems, fmt.Sprintf("no certificates in %s; obtain one with: regctl certs obtain NAME", m.Layout.LiveDir()))
	}
	for _, s := range st {
		switch {
		case s.Err != nil:
			problems = append(problems, fmt.Sprintf("%s: unreadable: %v", s.Name, s.Err))
		case s.Expired:
			problems = append(problems, fmt.Sprintf("%s: EXPIRED %s", s.Name, cmdutil.RelTime(s.NotAfter, now)))
		case s.Warn:
			problems = append(problems, fmt.Sprintf("%s: expires %s, within the warning window of %s",
				s.Name, cmdutil.RelTime(s.NotAfter, now), days(s.WarnBefore)))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	for _, p := range problems {
		fmt.Fprintf(o.IO.ErrOut, "warning: %s\n", p)
	}
	if len(st) > 0 {
		fmt.Fprintln(o.IO.ErrOut, "Check `regctl certs renew` (run it by hand to see why it fails) and its cron entry.")
	}
	return cmdutil.ErrSilent
}

func statusTable(d cmdutil.Deps, st []regcerts.CertStatus) *cmdutil.Table {
	tty := d.IO.IsStdoutTTY()
	loc := d.Loc()
	date := func(t time.Time) string {
		if tty {
			return t.In(loc).Format(cmdutil.DateLayout)
		}
		return t.UTC().Format(time.RFC3339)
	}
	tbl := cmdutil.NewTable("NAME", "ISSUER", "NOT AFTER", "DAYS LEFT", "NEXT RENEWAL", "ARI WINDOW")
	for _, s := range st {
		if s.Err != nil {
			tbl.Row(s.Name, "(unreadable)", "", "", "", "")
			continue
		}
		issuer := s.Issuer
		if s.Staging {
			issuer += " (staging)"
		}
		left := strconv.Itoa(int(s.Left.Hours() / 24))
		switch {
		case s.Expired:
			left = "expired"
		case s.Warn && tty:
			left = d.Colors().Red(left)
		}
		next := date(s.Next.At)
		if s.Next.Due {
			next = "due now"
		}
		ari := "-"
		if s.ARI.Valid() {
			ari = date(s.ARI.Start) + " to " + date(s.ARI.End)
		}
		tbl.Row(s.Name, issuer, date(s.NotAfter), left, next, ari)
	}
	return tbl
}

// days renders a duration in whole days ("14 days", "1 day") or hours.
func days(d time.Duration) string {
	switch n := int(d.Hours() / 24); {
	case d < 24*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case n == 1:
		return "1 day"
	default:
		return fmt.Sprintf("%d days", n)
	}
}

// DHParamsOptions are `regctl certs dhparams`' settings.
type DHParamsOptions struct {
	cmdutil.Deps

	// Out is the file to write ("-" for stdout).
	Out string
	// Bits picks the RFC 7919 group (2048, 3072, 4096).
	Bits int
	// Generate, when positive, computes fresh parameters of that size.
	Generate int
}

// NewCmdDHParams builds `regctl certs dhparams`.
func NewCmdDHParams(f *cmdutil.Factory, runF func(context.Context, *DHParamsOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dhparams",
		Short: "Write Diffie-Hellman parameters for nginx's ssl_dhparam",
		Long: `Write Diffie-Hellman parameters (PEM "DH PARAMETERS") for nginx's
ssl_dhparam, to ROOT/certs/dhparams.pem by default.

By default the file holds an RFC 7919 group (ffdhe2048, ffdhe3072 or
ffdhe4096, by --bits): published, well-studied safe primes, what Mozilla's
TLS configuration generator recommends; writing it is instant. --generate
BITS computes fresh safe-prime parameters instead, with a progress
indicator on stderr; 4096 bits can take many minutes.

nginx needs dhparams only when the TLS profile offers DHE cipher suites
(TLS 1.2 "intermediate"); TLS 1.3 and ECDHE do not use them.`,
		Example: `  regctl certs dhparams
  regctl certs dhparams --bits 4096
  regctl certs dhparams --generate 3072 --out /etc/nginx/dhparams.pem`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bindCertsConfig(f, cmd)
			fl := cmd.Flags()
			o := &DHParamsOptions{}
			o.Out, _ = fl.GetString("out")
			o.Bits, _ = fl.GetInt("bits")
			o.Generate, _ = fl.GetInt("generate")
			if o.Out == "" {
				o.Out = regcerts.Layout{Root: f.Config.GetString("root")}.DHParams()
			}
			if fl.Changed("bits") && fl.Changed("generate") {
				return cmdutil.FlagErrorf("--bits and --generate are mutually exclusive")
			}
			if o.Generate == 0 && !slices.Contains(regcerts.FFDHEBits, o.Bits) {
				return cmdutil.FlagErrorf("--bits %d: RFC 7919 groups have 2048, 3072 or 4096 bits (--generate BITS computes other sizes)", o.Bits)
			}
			if o.Generate != 0 && (o.Generate < 512 || o.Generate > 8192) {
				return cmdutil.FlagErrorf("--generate %d: want 512-8192 bits (2048 or more outside tests)", o.Generate)
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return dhParamsRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	addRootFlag(fl)
	fl.Int("bits", 2048, "size of the RFC 7919 group: 2048, 3072 or 4096")
	fl.Int("generate", 0, "compute fresh safe-prime parameters of BITS bits instead (slow)")
	fl.String("out", "", `file to write, "-" for stdout (default ROOT/certs/dhparams.pem)`)
	return cmd
}

func dhParamsRun(ctx context.Context, o *DHParamsOptions) error {
	var params *regcerts.DHParams
	var what string
	if o.Generate > 0 {
		if o.Generate < 2048 {
			fmt.Fprintf(o.IO.ErrOut, "warning: %d-bit DH parameters are weak; use them only for tests\n", o.Generate)
		}
		fmt.Fprintf(o.IO.ErrOut, "Generating %d-bit safe-prime DH parameters (this can take minutes; . + are candidates tested)\n", o.Generate)
		start := time.Now()
		var err error
		params, err = regcerts.GenerateDHParams(ctx, o.Generate, dhProgress(o.IO.ErrOut))
		fmt.Fprintln(o.IO.ErrOut)
		if err != nil {
			return fmt.Errorf("generate DH parameters: %w", err)
		}
		what = fmt.Sprintf("fresh %d-bit DH parameters (found in %s)", o.Generate, time.Since(start).Round(time.Second))
	} else {
		var err error
		if params, err = regcerts.FFDHE(o.Bits); err != nil {
			return err
		}
		what = "the RFC 7919 group " + params.Named()
	}
	data, err := params.PEM()
	if err != nil {
		return err
	}
	if o.Out == "-" {
		_, err := o.IO.Out.Write(data)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(o.Out), err)
	}
	if err := regcerts.WriteFileAtomic(o.Out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "Wrote %s to %s\n", what, o.Out)
	return nil
}

// dhProgress prints generation progress, at most one character per 10
// candidates so that a long search stays readable.
func dhProgress(w io.Writer) func(rune) {
	n := 0
	return func(r rune) {
		if r == regcerts.ProgressCandidate {
			if n++; n%10 != 0 {
				return
			}
		}
		_, _ = io.WriteString(w, string(r))
	}
}
