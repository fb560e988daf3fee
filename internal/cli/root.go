// Package cli is regctl's command line: cobra and viper live here and only
// here. Commands parse flags into options and hand plain values down.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// Main runs regctl and returns the process exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ios := cmdutil.System()
	return Execute(ctx, cmdutil.NewFactory(ios), os.Args[1:])
}

// Execute runs the command tree on args and maps errors to exit codes.
func Execute(ctx context.Context, f *cmdutil.Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		if _, _, ferr := root.Find(args); ferr != nil {
			// The arguments name no command: cobra's "unknown command".
			err = &cmdutil.FlagError{Err: err}
		}
	}
	var fe *cmdutil.FlagError
	var ee *cmdutil.ExitCodeError
	switch {
	case err == nil, errors.Is(err, cmdutil.ErrSilent), errors.As(err, &ee):
		// Already reported.
	case errors.As(err, &fe):
		fmt.Fprintf(f.IO.ErrOut, "error: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(f.IO.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	default:
		fmt.Fprintf(f.IO.ErrOut, "error: %v\n", err)
	}
	return cmdutil.ExitCode(err)
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "regctl",
		Short:         "Private Docker registry with per-user, per-repository access and expiry",
		Long:          "regctl provisions a private Docker registry, runs its token server, and manages who may pull and push what, until when.",
		Version:       displayVersion(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.LoadConfig(cmd, f)
		},
	}
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (YAML); keys are the long flag names")
	pf.String("store", "", "store URL: sqlite:///PATH/regctl.db or mongodb://HOST/DB (env REGCTL_STORE)")
	pf.String("log-level", "info", "log level: debug, info, warn, error")
	pf.String("log-format", "text", "log format: text or json")
	for _, name := range []string{"store", "log-level", "log-format"} {
		_ = f.Config.BindPFlag(name, pf.Lookup(name))
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.FlagError{Err: err} })

	root.AddCommand(
		NewCmdServe(f, nil),
		NewCmdKeys(f),
		NewCmdUser(f),
		NewCmdACL(f),
		NewCmdStore(f),
		NewCmdToken(f),
		NewCmdCerts(f),
		NewCmdInit(f, nil),
		NewCmdRender(f, nil),
		NewCmdHealthcheck(f),
		NewCmdDoctor(f, nil),
		NewCmdAudit(f),
		NewCmdImport(f),
		NewCmdCompletion(f),
	)
	return root
}

// System returns the process's streams (cmdutil.System).
func System() *cmdutil.IOStreams { return cmdutil.System() }

// NewFactory returns the production factory (cmdutil.NewFactory).
func NewFactory(ios *cmdutil.IOStreams) *cmdutil.Factory { return cmdutil.NewFactory(ios) }
