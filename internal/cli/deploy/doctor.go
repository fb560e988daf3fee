package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/doctor"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
)

// DoctorOptions are `regctl doctor`'s settings.
type DoctorOptions struct {
	IO     *cmdutil.IOStreams
	Output string
	// Env is the deployment and the probes the checks use: the real ones
	// unless a test's runF replaces them.
	Env doctor.Env
}

// NewCmdDoctor builds `regctl doctor`.
func NewCmdDoctor(f *cmdutil.Factory, runF func(context.Context, *DoctorOptions) error) *cobra.Command {
	o := &DoctorOptions{IO: f.IO}
	var root string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check a deployment and say how to fix what is wrong",
		Long: `Check the deployment described by regctl.yaml and print one finding per
line, each OK, WARN, ERROR or SKIP, with a fix:

  dns             each domain resolves to an address of this host
  tls-cert        certificates/live/NAME/fullchain.pem: present, covering NAME,
                  not self-signed, more than 14 days left
  signing-keys    the token-signing keys load as regctl serve loads them
  signing-cert    the signing certificate has more than 30 days left
  signing-bundle  it chains to the CA bundle the registry trusts
  token-config    issuer, service and realm agree between the registry's
                  config.yml, the token server's settings and regctl.yaml
  store           the store answers (--store, the embedded SQLite file, or
                  for the managed MongoDB the token server's /readyz)
  store-indexes   its unique indexes exist (MongoDB)
  clock-skew      its clock agrees with this host's (MongoDB)
  file-modes      keys, secrets and private configuration: 0600 files, 0700
                  directories, no symbolic links
  compose-ports   only nginx publishes ports (published ports bypass ufw)
  ufw             the firewall is active: deny incoming, allow SSH, 80, 443
  fail2ban        the regctl-auth jail is active

It changes nothing. The exit status is 1 if any finding is an ERROR. Run it
as root: ufw and fail2ban answer root only.`,
		Example: `  regctl doctor --config /etc/regctl/regctl.yaml
  regctl doctor --config /etc/regctl/regctl.yaml --store mongodb://regctl:PW@127.0.0.1:27017/regctl?authSource=admin
  regctl doctor --config regctl.yaml -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckOutput(o.Output, cmdutil.FormatTable, cmdutil.FormatJSON); err != nil {
				return err
			}
			c, path, err := LoadRegctlConfig(cmd, f.Config)
			if err != nil {
				return err
			}
			if root != "" {
				if c.Root, err = rootFlag(root); err != nil {
					return err
				}
			}
			if err := c.Validate(); err != nil {
				return configError(path, err)
			}
			sys := provision.LocalSystem()
			o.Env = doctor.Env{
				Config:     c,
				ConfigPath: path,
				Now:        f.Now,
				LookupHost: net.DefaultResolver.LookupHost,
				HostAddrs:  sys.HostAddrs,
				Runner:     provision.NewExecHost(c.Root, nil),
			}
			o.Env.Store, o.Env.StoreNote = doctorStore(f.Config.GetString("store"), c)
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return doctorRun(cmd.Context(), o)
		},
	}
	cmdutil.AddOutputFlag(cmd, &o.Output, cmdutil.FormatTable, cmdutil.FormatJSON)
	cmd.Flags().StringVar(&root, "root", "", "install root `DIR` to check (overrides root in regctl.yaml)")
	return cmd
}

// doctorStore says how doctor reaches the store: --store if given, else the
// embedded SQLite file below the root, else an external MongoDB's URL. The
// managed MongoDB container is on the compose network only: nil, and the
// checks ask the token server instead.
func doctorStore(url string, c *config.Config) (func(context.Context) (store.Store, error), string) {
	switch {
	case url != "":
		return func(ctx context.Context) (store.Store, error) { return cmdutil.OpenStore(ctx, url) }, ""
	case c.Database.Backend == config.BackendSQLite:
		p := filepath.Join(c.Root, filepath.FromSlash(render.SQLiteDataDir), "regctl.db")
		return func(ctx context.Context) (store.Store, error) {
			// Opening would create it: a doctor changes nothing.
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("%w (regctl serve creates it when it first starts)", err)
			}
			return sqlite.Open(ctx, p)
		}, ""
	case c.Database.URL != "":
		return func(ctx context.Context) (store.Store, error) { return cmdutil.OpenStore(ctx, c.Database.URL) }, ""
	}
	return nil, "the managed MongoDB is on the compose network only: pass --store to check its indexes and clock"
}

func doctorRun(ctx context.Context, o *DoctorOptions) error {
	findings := doctor.Run(ctx, o.Env)
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.Output == cmdutil.FormatJSON {
		if err := cmdutil.WriteJSON(o.IO.Out, findings); err != nil {
			return err
		}
	} else {
		c := cmdutil.Colors{On: o.IO.ColorEnabled()}
		t := cmdutil.NewTable("CHECK", "STATUS", "FINDING", "FIX")
		for _, fd := range findings {
			t.Row(fd.Check, statusColor(c, fd.Status), fd.Message, fd.Fix)
		}
		if err := t.Render(o.IO.Out); err != nil {
			return err
		}
	}
	n := doctor.Count(findings)
	var parts []string
	for _, s := range []struct {
		st   doctor.Status
		name string
	}{{doctor.Error, "error"}, {doctor.Warn, "warning"}, {doctor.OK, "ok"}, {doctor.Skip, "skipped"}} {
		if n[s.st] > 0 {
			word := s.name
			if n[s.st] != 1 && s.st != doctor.OK && s.st != doctor.Skip {
				word += "s"
			}
			parts = append(parts, fmt.Sprintf("%d %s", n[s.st], word))
		}
	}
	fmt.Fprintf(o.IO.ErrOut, "%s: %s\n", o.Env.Config.Root, strings.Join(parts, ", "))
	if doctor.Failed(findings) {
		return cmdutil.ErrSilent
	}
	return nil
}

// statusColor colours a doctor status on a terminal.
func statusColor(c cmdutil.Colors, s doctor.Status) string {
	switch s {
	case doctor.OK:
		return c.Green(s.String())
	case doctor.Warn:
		return c.Wrap("33", s.String())
	case doctor.Error:
		return c.Red(s.String())
	}
	return s.String()
}
