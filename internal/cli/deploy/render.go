package deploy

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/redact"
	"github.com/regctl/regctl/internal/render"
)

// RenderOptions are `regctl render`'s settings.
type RenderOptions struct {
	IO         *cmdutil.IOStreams
	Config     *config.Config
	ConfigPath string // absolute; "" when settings come from the environment only
	Out        string // --out: render into this root instead of the configured one
	Diff       bool
	Force      bool
	Now        func() time.Time
	// Env supplies the binary and its installed path; nil uses the
	// running executable.
	Env func() (render.Env, error)
	// Host returns the host to act on; nil uses the real machine.
	Host func(root string) provision.Host
}

// NewCmdRender builds `regctl render`.
func NewCmdRender(f *cmdutil.Factory, runF func(context.Context, *RenderOptions) error) *cobra.Command {
	o := &RenderOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Render nginx, compose, registry, token server, firewall, fail2ban and renewal files from regctl.yaml",
		Long: `Render every file of the deployment from regctl.yaml and the templates
embedded in regctl, compare them with what is on disk, and write what changed.

Unchanged files are not touched. Changed files are replaced atomically and
the previous version is kept under ROOT/.regctl/backup/. Secrets and keys are
generated once, on the first render, and never again. A file edited by hand
since the last render is not overwritten: render shows its diff and asks (on
a terminal) or stops, unless --force. --diff shows unified diffs and changes
nothing.

After a change, restart what reads the changed files; render prints how.`,
		Example: `  regctl render --config /etc/regctl/regctl.yaml --diff
  regctl render --config /etc/regctl/regctl.yaml
  regctl render --config regctl.yaml --out /tmp/preview`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Config, o.ConfigPath, err = LoadRegctlConfig(cmd, f.Config); err != nil {
				return err
			}
			if o.Out != "" {
				if o.Out, err = filepath.Abs(o.Out); err != nil {
					return err
				}
				o.Config.Root = o.Out
				if err := config.CheckPath(o.Out); err != nil {
					return cmdutil.FlagErrorf("--out: %v", err)
				}
			}
			if err := o.Config.Validate(); err != nil {
				return configError(o.ConfigPath, err)
			}
			o.Now = f.Now
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return renderRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Out, "out", "", "render into `DIR` instead of the configured root (the files then refer to DIR)")
	fl.BoolVar(&o.Diff, "diff", false, "print unified diffs of what would change, and change nothing")
	fl.BoolVar(&o.Force, "force", false, "overwrite files edited by hand (a backup is kept)")
	return cmd
}

// renderRun renders. Everything it prints, and the error it returns, has
// the configuration's secrets and the generated ones masked.
func renderRun(ctx context.Context, o *RenderOptions) error {
	secrets, ios := maskSecrets(o.IO, o.Config)
	defer flushOutput(ios)
	mo := *o
	mo.IO = ios
	return secrets.Error(renderWith(ctx, &mo, secrets))
}

func renderWith(ctx context.Context, o *RenderOptions, secrets *redact.Set) error {
	c := o.Config
	env, err := o.renderEnv()
	if err != nil {
		return err
	}
	var h provision.Host
	if o.Host != nil {
		h = o.Host(c.Root)
	} else {
		h = provision.NewExecHost(c.Root, o.IO.ErrOut)
	}
	if o.Diff {
		h = provision.NewDryRunHost(h, o.IO.ErrOut, secrets)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	sf := provision.SecretFiles{Host: h, Config: c, Known: secrets}
	gen, err := sf.Ensure(now())
	if err != nil {
		return err
	}
	for _, g := range gen {
		fmt.Fprintf(o.IO.ErrOut, "generated %s\n", filepath.Join(c.Root, g))
	}
	s, err := sf.Load()
	if err != nil {
		return err
	}
	files, err := render.Files(c, s, env)
	if err != nil {
		return err
	}
	syncer := &provision.Syncer{Host: h, Root: c.Root, Now: now, Secrets: secrets}
	plan, err := syncer.Plan(files)
	if err != nil {
		return err
	}
	pending := plan.Pending()
	if o.Diff {
		for _, ch := range pending {
			if ch.Kind == provision.Edited {
				fmt.Fprintf(o.IO.ErrOut, "%s was edited by hand since the last render: `regctl render` keeps it unless you confirm or pass --force\n", filepath.Join(c.Root, ch.File.Path))
			}
			if d := plan.Diff(ch); d != "" {
				fmt.Fprint(o.IO.Out, d)
			} else if ch.File.Dir {
				fmt.Fprintf(o.IO.Out, "directory %s/ (mode %04o)\n", filepath.Join(c.Root, ch.File.Path), ch.File.Mode.Perm())
			} else {
				fmt.Fprintf(o.IO.Out, "mode of %s: %04o -> %04o\n", filepath.Join(c.Root, ch.File.Path), ch.OldMode, ch.File.Mode.Perm())
			}
		}
		if len(pending) == 0 {
			fmt.Fprintf(o.IO.ErrOut, "%s is up to date\n", c.Root)
		} else {
			fmt.Fprintf(o.IO.ErrOut, "%d change(s) in %s; nothing was written (run without --diff to apply)\n", len(pending), c.Root)
		}
		return nil
	}
	syncer.Out = o.IO.ErrOut
	opts := provision.ApplyOptions{Force: o.Force}
	if !o.Force && o.IO.IsStdinTTY() && o.IO.IsStdoutTTY() {
		opts.Confirm = confirmOverwrite(o.IO)
	}
	res, err := syncer.Apply(ctx, plan, opts)
	if err != nil {
		return err
	}
	for _, k := range res.Kept {
		fmt.Fprintf(o.IO.ErrOut, "kept your version of %s\n", filepath.Join(c.Root, k))
	}
	if len(res.Written) == 0 {
		fmt.Fprintf(o.IO.ErrOut, "%s is up to date\n", c.Root)
		return nil
	}
	if res.Backups != "" {
		fmt.Fprintf(o.IO.ErrOut, "previous versions kept in %s\n", res.Backups)
	}
	for _, hint := range render.RestartHints(c, res.Written) {
		fmt.Fprintf(o.IO.ErrOut, "then: %s\n", hint)
	}
	return nil
}

func confirmOverwrite(ios *cmdutil.IOStreams) func(provision.Change, string) (bool, error) {
	in := bufio.NewReader(ios.In)
	return func(c provision.Change, diff string) (bool, error) {
		fmt.Fprint(ios.Out, diff)
		fmt.Fprintf(ios.ErrOut, "%s was edited by hand since the last render. Overwrite it (a backup is kept)? [y/N] ", c.File.Path)
		flushOutput(ios)
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			return false, fmt.Errorf("read answer: %w", err)
		}
		a := strings.ToLower(strings.TrimSpace(line))
		return a == "y" || a == "yes", nil
	}
}

func (o *RenderOptions) renderEnv() (render.Env, error) {
	if o.Env != nil {
		env, err := o.Env()
		if err != nil {
			return env, err
		}
		env.ConfigPath = o.ConfigPath
		return env, nil
	}
	env, err := ExecutableEnv()
	env.ConfigPath = o.ConfigPath
	return env, err
}

// ExecutableEnv describes the running regctl: its path (for the renewal
// job) and its bytes (for the token server image), which must be a static
// executable because the image is FROM scratch.
func ExecutableEnv() (render.Env, error) {
	self, err := os.Executable()
	if err != nil {
		return render.Env{}, fmt.Errorf("find the regctl executable: %w", err)
	}
	if s, err := filepath.EvalSymlinks(self); err == nil {
		self = s
	}
	if err := config.CheckPath(self); err != nil {
		return render.Env{}, fmt.Errorf("regctl executable: %w (install it as /usr/local/bin/regctl)", err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		return render.Env{}, fmt.Errorf("read the regctl executable: %w", err)
	}
	if err := checkStatic(self); err != nil {
		return render.Env{}, err
	}
	return render.Env{BinaryPath: self, Binary: bin}, nil
}

// checkStatic refuses a dynamically linked ELF executable.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return nil // not ELF: nothing to say
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked, but the token server image is FROM scratch: build regctl with CGO_ENABLED=0 (make build)", path)
		}
	}
	return nil
}

// LoadRegctlConfig decodes regctl.yaml's settings from v (config file,
// REGCTL_* environment, defaults) into a Config. It does not validate. The
// returned path is the absolute config file path, or "" if none was given.
func LoadRegctlConfig(cmd *cobra.Command, v *viper.Viper) (*config.Config, string, error) {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("REGCTL_CONFIG")
	}
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, "", err
		}
		path = abs
	}
	// A key under its old name (config.Renamed) counts where the current
	// name is not set; LoadConfig has warned about it.
	old := map[string]string{}
	for _, k := range v.AllKeys() {
		if current, ok := config.Renamed(k); ok && v.InConfig(k) {
			old[current] = k
		}
	}
	sub := viper.New()
	for _, k := range config.Keys() {
		switch {
		case v.IsSet(k.Name):
			sub.Set(k.Name, v.Get(k.Name))
		case old[k.Name] != "":
			sub.Set(k.Name, v.Get(old[k.Name]))
		}
	}
	c := config.Defaults()
	if err := sub.UnmarshalExact(&c); err != nil {
		return nil, path, configError(path, decodeError(err))
	}
	return &c, path, nil
}

// decodeError makes mapstructure's multi-line decoding error one line:
// "'tls.hsts-max-age' cannot parse value as 'int': ...".
func decodeError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return errors.New(strings.Join(parts, "; "))
}

// configError names the configuration source in err.
func configError(path string, err error) error {
	src := "configuration (REGCTL_* environment)"
	if path != "" {
		src = "config " + path
	}
	return fmt.Errorf("%s: %w", src, err)
}
