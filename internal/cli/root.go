// Package cli is regctl's command line: cobra and viper live here and only
// here. Commands parse flags into options and hand plain values down.
package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/acl"
	"github.com/regctl/regctl/internal/cli/audit"
	"github.com/regctl/regctl/internal/cli/certs"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/deploy"
	"github.com/regctl/regctl/internal/cli/keys"
	"github.com/regctl/regctl/internal/cli/serve"
	"github.com/regctl/regctl/internal/cli/store"
	"github.com/regctl/regctl/internal/cli/token"
	"github.com/regctl/regctl/internal/cli/user"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// Main runs regctl and returns the process exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ios := cmdutil.System()
	return Execute(ctx, NewFactory(ios), os.Args[1:])
}

// Execute runs the command tree on args and maps errors to exit codes.
func Execute(ctx context.Context, f *cmdutil.Factory, args []string) int {
	return cmdutil.Execute(ctx, NewCmdRoot(f), f.IO, args)
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
	}
	cmdutil.SetupRoot(root, f)

	root.AddCommand(
		serve.NewCmdServe(f, nil),
		keys.NewCmdKeys(f),
		user.NewCmdUser(f),
		acl.NewCmdACL(f),
		store.NewCmdStore(f),
		token.NewCmdToken(f),
		certs.NewCmdCerts(f),
		deploy.NewCmdInit(f, nil),
		deploy.NewCmdRender(f, nil),
		deploy.NewCmdHealthcheck(f),
		deploy.NewCmdDoctor(f, nil),
		audit.NewCmdAudit(f),
		acl.NewCmdImportGroup(f),
		NewCmdCompletion(f),
	)
	return root
}

// System returns the process's streams (cmdutil.System).
func System() *cmdutil.IOStreams { return cmdutil.System() }

// NewFactory returns the production factory (cmdutil.NewFactory) with
// regctl's version.
func NewFactory(ios *cmdutil.IOStreams) *cmdutil.Factory {
	f := cmdutil.NewFactory(ios)
	f.AppVersion = Version
	return f
}
