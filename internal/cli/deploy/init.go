// Package deploy is setting up and checking a deployment: `regctl init`,
// `render`, `doctor` and `healthcheck`, and the secrets they keep out of
// their output.
package deploy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/redact"
	"github.com/regctl/regctl/internal/render"
)

// InitOptions are `regctl init`'s settings.
type InitOptions struct {
	IO            *cmdutil.IOStreams
	Config        *config.Config
	ConfigPath    string
	DryRun        bool
	SelfSigned    bool
	PasswordStdin bool
	Admin         string
	SkipChecks    []string
	Force         bool
	// Join: this host joins a deployment that runs on other hosts.
	Join bool
	Now  func() time.Time

	// System probes the machine for the preflight checks; tests fake it.
	System provision.System
	// Host returns the host to act on (before any dry-run wrapping); nil
	// uses the real machine.
	Host func(root string) provision.Host
	// Env supplies the binary and its installed path; nil uses the
	// running executable.
	Env func() (render.Env, error)
	// LockPath is the init lock (provision.InitLockPath), held from before
	// preflight until init returns, so that a second init fails at once
	// instead of running the steps alongside the first. Empty: no lock
	// (tests). A dry run does not take it: it changes nothing.
	LockPath string
}

// NewCmdInit builds `regctl init`.
func NewCmdInit(f *cmdutil.Factory, runF func(context.Context, *InitOptions) error) *cobra.Command {
	o := &InitOptions{IO: f.IO}
	var backend, root string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Turn a fresh Ubuntu host into a locked-down private registry",
		Long: `Provision this host (Ubuntu 22.04 or 24.04, Debian 12 or 13) from regctl.yaml, in order:

   1. install ufw, fail2ban, logrotate and docker with the compose plugin (apt)
   2. firewall: allow SSH first, then 80 and 443; deny other incoming traffic
   3. fail2ban jail for failed token requests (bans in DOCKER-USER), log rotation
   4. generate secrets, token-signing keys and DH parameters (once)
   5. obtain certificates (regctl certs obtain), or --self-signed
   6. render every file (as regctl render)
   7. docker compose build and up, and wait until all services are healthy
   8. install the default ACL rules and create the first admin user
   9. install the certificate renewal schedule (systemd timer or cron)
  10. print the next steps

Preflight checks come first: root, the OS version, ports 80 and 443 free,
the domain names resolving to this host, disk space. Each step checks before
it acts, so a re-run is safe and does only what is missing; after a failure,
fix the cause and run init again. --dry-run prints every command and file
diff and changes nothing.

One init runs at a time: it holds the lock /run/regctl-init.lock from before
preflight until it exits, and a second init stops at once, saying which
process holds it (a dry run takes no lock).

--join sets up another host of a deployment: the same external store and S3
bucket (regctl.yaml), the first host's registry http secret (copy
ROOT/secrets/registry-http-secret, mode 0600) and a signing key of this
host's own under the deployment's CA (regctl keys request, sign and join).
It generates neither: without them it stops and says what is missing.`,
		Example: `  regctl init --config /etc/regctl/regctl.yaml
  regctl init --config /etc/regctl/regctl.yaml --dry-run
  echo "$ADMIN_PASSWORD" | regctl init --config /etc/regctl/regctl.yaml --password-stdin
  regctl init --config regctl.yaml --self-signed --backend sqlite`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Config, o.ConfigPath, err = LoadRegctlConfig(cmd, f.Config); err != nil {
				return err
			}
			if cmd.Flags().Changed("store") {
				fmt.Fprintln(o.IO.ErrOut, "warning: init --store is deprecated and goes in the next release: use --backend (elsewhere --store is a store URL)")
			}
			switch backend {
			case "":
			case config.BackendMongo, config.BackendSQLite:
				o.Config.Database.Backend = backend
			default:
				return cmdutil.FlagErrorf("--backend %q: use %s or %s", backend, config.BackendSQLite, config.BackendMongo)
			}
			if root != "" {
				if o.Config.Root, err = rootFlag(root); err != nil {
					return err
				}
			}
			for _, c := range o.SkipChecks {
				switch c {
				case provision.CheckOS, provision.CheckPorts, provision.CheckDNS, provision.CheckDisk:
				default:
					return cmdutil.FlagErrorf("--skip-check %q: use os, ports, dns or disk", c)
				}
			}
			if err := o.Config.Validate(); err != nil {
				return configError(o.ConfigPath, err)
			}
			if o.Join && (o.Config.Database.URL == "" || o.Config.Storage.Driver != config.DriverS3) {
				return cmdutil.FlagErrorf("--join: the hosts of a deployment share the store and the registry's storage: set database.url (an external MongoDB) and storage.driver s3 in %s", cmp.Or(o.ConfigPath, "regctl.yaml"))
			}
			o.Now = f.Now
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			o.System = provision.LocalSystem()
			o.LockPath = provision.InitLockPath
			return initRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the plan (commands and file diffs) and change nothing")
	fl.BoolVar(&o.SelfSigned, "self-signed", false, "use self-signed certificates instead of asking the ACME CA")
	fl.StringVar(&backend, "backend", "", "store backend: sqlite or mongo (overrides database.backend)")
	// --store is a store URL on every other command; init's old spelling
	// of --backend still works, with a warning, until the next release.
	// (Not cobra's MarkDeprecated: it prints the warning on stdout.)
	fl.StringVar(&backend, "store", "", "deprecated: use --backend")
	_ = fl.MarkHidden("store")
	fl.StringVar(&root, "root", "", "install root `DIR` (overrides root in regctl.yaml)")
	fl.BoolVar(&o.PasswordStdin, "password-stdin", false, "read the first admin user's password from stdin")
	fl.StringVar(&o.Admin, "admin", "admin", "name of the first admin user")
	fl.StringSliceVar(&o.SkipChecks, "skip-check", nil, "skip a preflight check: os, ports, dns or disk (repeatable)")
	fl.BoolVar(&o.Force, "force", false, "overwrite rendered files edited by hand (a backup is kept)")
	fl.BoolVar(&o.Join, "join", false, "join a deployment running on other hosts: its store and bucket, its registry http secret (copied) and a signing key under its CA (regctl keys request/sign/join) instead of new ones")
	return cmd
}

// rootFlag returns dir, given with --root (init, doctor), as an absolute
// path that config accepts as the install root.
func rootFlag(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := config.CheckPath(abs); err != nil {
		return "", cmdutil.FlagErrorf("--root: %v", err)
	}
	return abs, nil
}

// initRun runs init. Everything it prints (the plan of a dry run, the
// output of the commands it runs), and the error it returns, has the
// configuration's secrets and the generated ones masked.
func initRun(ctx context.Context, o *InitOptions) error {
	secrets, ios := maskSecrets(o.IO, o.Config)
	defer flushOutput(ios)
	mo := *o
	mo.IO = ios
	return secrets.Error(initWith(ctx, &mo, secrets))
}

func initWith(ctx context.Context, o *InitOptions, secrets *redact.Set) error {
	c := o.Config
	if o.LockPath != "" && !o.DryRun {
		l, err := provision.LockInit(o.LockPath)
		switch {
		case err == nil:
			defer l.Release()
		case errors.Is(err, provision.ErrInitLocked):
			return err
		case o.System.EUID() != 0:
			// Not root: preflight says so, and stops.
		default:
			return err
		}
	}
	var h provision.Host
	if o.Host != nil {
		h = o.Host(c.Root)
	} else {
		eh := provision.NewExecHost(c.Root, nil)
		eh.Live = &provision.Live{Out: o.IO.ErrOut, TTY: o.IO.IsStderrTTY()}
		h = eh
	}
	if o.DryRun {
		h = provision.NewDryRunHost(h, o.IO.ErrOut, secrets)
		fmt.Fprintf(o.IO.ErrOut, "Dry run: nothing on this host changes.\n")
	}
	var env render.Env
	var err error
	if o.Env != nil {
		env, err = o.Env()
	} else {
		env, err = ExecutableEnv()
	}
	if err != nil {
		return err
	}
	env.ConfigPath = o.ConfigPath

	// Preflight.
	results := provision.Preflight(ctx, o.System, c, provision.PreflightOptions{
		Skip:       o.SkipChecks,
		SelfSigned: o.SelfSigned,
		PortsOurs:  func() bool { return nginxRunning(ctx, h, c) },
	})
	fmt.Fprintln(o.IO.ErrOut, "Preflight:")
	for _, r := range results {
		mark := "ok  "
		switch {
		case r.Warn:
			mark = "warn"
		case !r.OK:
			mark = "FAIL"
		}
		fmt.Fprintf(o.IO.ErrOut, "  %s %-5s %s\n", mark, r.Name, r.Msg)
	}
	preflightFailed := provision.Failed(results)
	if preflightFailed && !o.DryRun {
		return errors.New("preflight checks failed: fix the problems above and run regctl init again (nothing was changed)")
	}

	// The first admin's password, asked before any step runs.
	var password []byte
	need, err := provision.NeedsAdmin(h, c)
	if err != nil {
		return err
	}
	need = need && !o.Join // the first host seeded the shared store
	switch {
	case !need:
	case o.DryRun:
		password = []byte("dry-run")
	case o.PasswordStdin:
		if password, err = readPasswordLine(o.IO); err != nil {
			return err
		}
	case o.IO.IsStdinTTY():
		if password, err = promptNewPassword(o.IO, o.Admin); err != nil {
			return err
		}
	default:
		return cmdutil.FlagErrorf("the first admin user %q needs a password: run on a terminal or pass --password-stdin", o.Admin)
	}

	if !o.DryRun {
		secrets.Add(string(password))
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	distro, _ := o.System.Distro() // unreadable: step 1 says it knows no packages
	opts := provision.InitOptions{
		Config:        c,
		Distro:        distro,
		Render:        env,
		Self:          self,
		SelfSigned:    o.SelfSigned,
		Join:          o.Join,
		AdminUser:     o.Admin,
		AdminPassword: password,
		Force:         o.Force,
		DryRun:        o.DryRun,
		Secrets:       secrets,
		Now:           o.Now,
		Out:           o.IO.ErrOut,
	}
	if !o.Force && !o.DryRun && o.IO.IsStdinTTY() && o.IO.IsStdoutTTY() {
		opts.Confirm = confirmOverwrite(o.IO)
	}
	if o.DryRun {
		opts.Force = true // show every diff; nothing is written anyway
	}
	if err := provision.Init(ctx, h, opts); err != nil {
		return err
	}
	if o.DryRun {
		fmt.Fprintln(o.IO.ErrOut, "Dry run complete: nothing was changed.")
		if preflightFailed {
			return errors.New("preflight checks failed (see above): init would stop before step 1")
		}
	}
	return nil
}

// nginxRunning reports whether this deployment's nginx container runs.
func nginxRunning(ctx context.Context, h provision.Host, c *config.Config) bool {
	out, err := h.Query(ctx, "docker", "compose", "-f", filepath.Join(c.Root, render.ComposeFile), "-p", c.Project,
		"ps", "--format", "json", "nginx")
	if err != nil {
		return false
	}
	svcs, err := provision.ParseComposePS(out)
	if err != nil {
		return false
	}
	for _, s := range svcs {
		if s.Service == "nginx" && s.State == "running" {
			return true
		}
	}
	return false
}

func readPasswordLine(ios *cmdutil.IOStreams) ([]byte, error) {
	line, err := bufio.NewReader(ios.In).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return nil, fmt.Errorf("read password from stdin: %w", err)
	}
	pw := bytes.TrimRight(line, "\r\n")
	if len(pw) == 0 {
		return nil, cmdutil.FlagErrorf("--password-stdin: empty password")
	}
	return pw, nil
}

func promptNewPassword(ios *cmdutil.IOStreams, user string) ([]byte, error) {
	fmt.Fprintf(ios.ErrOut, "Password for the first admin user %q: ", user)
	flushOutput(ios)
	pw, err := ios.ReadPassword()
	fmt.Fprintln(ios.ErrOut)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(ios.ErrOut, "Again: ")
	flushOutput(ios)
	again, err := ios.ReadPassword()
	fmt.Fprintln(ios.ErrOut)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if len(pw) == 0 {
		return nil, errors.New("empty password")
	}
	if !bytes.Equal(pw, again) {
		return nil, errors.New("the passwords differ")
	}
	return pw, nil
}

// NewCmdHealthcheck builds the hidden `regctl healthcheck URL`: the token
// server container's health check (its image is FROM scratch: no shell,
// no curl). It exits 0 when URL answers 200.
func NewCmdHealthcheck(_ *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:    "healthcheck URL",
		Short:  "Exit 0 if URL answers 200 (the token server container's health check)",
		Hidden: true,
		Args:   cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.HasPrefix(args[0], "http://") && !strings.HasPrefix(args[0], "https://") {
				return cmdutil.FlagErrorf("want an http:// URL, got %q", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: status %d", args[0], resp.StatusCode)
			}
			return nil
		},
	}
}
