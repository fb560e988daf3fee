// Package store is `regctl store`: moving data between stores.
package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	regstore "github.com/regctl/regctl/internal/store"
)

// NewCmdStore builds `regctl store`.
func NewCmdStore(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Move data between stores"}
	cmd.AddCommand(NewCmdMigrate(f, nil))
	return cmd
}

// MigrateOptions are `regctl store migrate`'s settings.
type MigrateOptions struct {
	IO       *cmdutil.IOStreams
	From, To string
	Prune    bool
	DryRun   bool
}

// NewCmdMigrate builds `regctl store migrate`.
func NewCmdMigrate(f *cmdutil.Factory, runF func(context.Context, *MigrateOptions) error) *cobra.Command {
	o := &MigrateOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "migrate --from URL --to URL",
		Short: "Copy users, grants, labels and rules from one store to another",
		Long: `Copy every user (password hashes as they are, labels, grants, expiry,
disabled flag) and the whole rule set from one store to another, for example
from the single-host SQLite default to MongoDB. It is idempotent: identical
users are left alone and the rules are replaced only when they differ. At the
end both stores must agree on the user and rule counts and on a content hash.
A destination user the source lacks stops the copy unless --prune.`,
		Example: "  regctl store migrate --from sqlite:///var/lib/regctl/regctl.db --to 'mongodb://regctl@db1,db2,db3/regctl?replicaSet=rs0'",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.From == "" || o.To == "" {
				return cmdutil.FlagErrorf("--from and --to are both required")
			}
			if o.From == o.To {
				return cmdutil.FlagErrorf("--from and --to name the same store")
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return migrateRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.From, "from", "", "source store URL (required)")
	cmd.Flags().StringVar(&o.To, "to", "", "destination store URL (required)")
	cmd.Flags().BoolVar(&o.Prune, "prune", false, "delete destination users that the source lacks")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "show what would change, write nothing")
	return cmd
}

func migrateRun(ctx context.Context, o *MigrateOptions) error {
	src, err := cmdutil.OpenStore(ctx, o.From)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := cmdutil.OpenStore(ctx, o.To)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close(context.WithoutCancel(ctx))
	rep, err := regstore.Migrate(ctx, src, dst, o.Prune, o.DryRun)
	if err != nil {
		return err
	}
	verb := ""
	if o.DryRun {
		verb = "would be "
	}
	w := o.IO.ErrOut
	fmt.Fprintf(w, "Users: %d %screated, %d %supdated, %d unchanged\n", len(rep.Created), verb, len(rep.Updated), verb, rep.Unchanged)
	if len(rep.Created) > 0 {
		fmt.Fprintf(w, "  created: %s\n", strings.Join(rep.Created, ", "))
	}
	if len(rep.Updated) > 0 {
		fmt.Fprintf(w, "  updated: %s\n", strings.Join(rep.Updated, ", "))
	}
	if rep.RulesSet {
		fmt.Fprintf(w, "Rules: %d rule(s) %scopied\n", rep.Rules, verb)
	} else {
		fmt.Fprintf(w, "Rules: %d rule(s), already identical\n", rep.Rules)
	}
	if !o.DryRun {
		fmt.Fprintf(w, "Verified: both stores hold the same content (sha256 %s)\n", rep.Hash)
	}
	return nil
}
