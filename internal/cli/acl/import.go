package acl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/dockerauth"
	"github.com/regctl/regctl/internal/store"
)

// NewCmdImportGroup builds `regctl import`.
func NewCmdImportGroup(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "import",
		Short:   "Import users and rules from other tools",
		Example: "  regctl import docker-auth /etc/docker_auth/auth_config.yml --dry-run",
	}
	cmd.AddCommand(NewCmdImportDockerAuth(f, nil))
	return cmd
}

// ImportDockerAuthOptions are `regctl import docker-auth`'s settings.
type ImportDockerAuthOptions struct {
	cmdutil.Deps

	File   string
	Config *dockerauth.Config
	Update bool
	DryRun bool
}

// NewCmdImportDockerAuth builds `regctl import docker-auth`.
func NewCmdImportDockerAuth(f *cmdutil.Factory, runF func(context.Context, *ImportDockerAuthOptions) error) *cobra.Command {
	o := &ImportDockerAuthOptions{}
	cmd := &cobra.Command{
		Use:   "docker-auth FILE",
		Short: "Import the static users and ACL of a cesanta/docker_auth auth_config.yml",
		Long: `Import a cesanta/docker_auth configuration file ('-' for stdin): its static
users (bcrypt hashes as they are, and labels) and its static acl list (seq
10, 20, ... in file order; comments kept). docker_auth matches /regular
expressions/ unanchored and regctl anchors them, so each regex is rewritten
to /.*(?:RE).*/ to keep its meaning, and reported.

Everything else is reported on stderr instead of being dropped silently:
other authentication and authorization backends, server and token settings
(with the regctl serve flags that replace them), users that cannot be
imported. An acl entry whose actions list * among other actions is imported
as it is, and reported: as in docker_auth, only actions that are exactly *
allow everything. A docker_auth MongoDB (mongo_auth, acl_mongo) needs no import:
point --store at it and regctl reads its users and acl collections as they
are.

Users that already exist are reported and skipped, and the acl is not
imported into a store that already has different rules, unless --update:
then existing users get the file's password hash and labels (their grants,
expiry and disabled state are kept) and the file's acl replaces all rules.
Nothing is written when the acl is invalid or uses conditions regctl cannot
carry over exactly.`,
		Example: `  regctl import docker-auth auth_config.yml --dry-run
  regctl import docker-auth auth_config.yml
  regctl import docker-auth auth_config.yml --update`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			data, err := cmdutil.ReadFileOrStdin(f.IO, o.File)
			if err != nil {
				return err
			}
			if o.Config, err = dockerauth.Parse(data); err != nil {
				return fmt.Errorf("%s: %w", o.File, err)
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return importDockerAuthRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Update, "update", false, "overwrite existing users' password hash and labels, and replace all rules with the file's acl")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func importDockerAuthRun(ctx context.Context, o *ImportDockerAuthOptions) error {
	c := o.Config
	out := o.IO.ErrOut
	return o.WithStore(ctx, func(st store.Store) error {
		var created, updated, skipped int
		now := store.Truncate(o.Now())
		for _, u := range c.Users {
			old, err := st.GetUser(ctx, u.Username)
			switch {
			case errors.Is(err, store.ErrNotFound):
				u.CreatedAt, u.UpdatedAt = now, now
				if !o.DryRun {
					if err := st.CreateUser(ctx, &u); err != nil {
						return cmdutil.StoreErr(err, "user "+u.Username)
					}
				}
				created++
				fmt.Fprintf(out, "%s user %s%s\n", cmdutil.Would(o.DryRun, "Imported", "import"), u.Username, labelsSuffix(u.Labels))
			case err != nil:
				return cmdutil.StoreErr(err, "user "+u.Username)
			case old.PasswordHash == u.PasswordHash && labelsEqual(old.Labels, u.Labels):
				fmt.Fprintf(out, "No change: user %s exists with the same password hash and labels\n", u.Username)
			case !o.Update:
				skipped++
				fmt.Fprintf(out, "Skipped user %s: already exists (pass --update to overwrite its password hash and labels)\n", u.Username)
			default:
				if _, err := cmdutil.UpdateUser(ctx, st, u.Username, o.DryRun, func(x *store.User) error {
					x.PasswordHash, x.Labels = u.PasswordHash, u.Labels
					return nil
				}); err != nil {
					return err
				}
				updated++
				fmt.Fprintf(out, "%s user %s: password hash and labels%s\n", cmdutil.Would(o.DryRun, "Updated", "update"), u.Username, labelsSuffix(u.Labels))
			}
		}
		ruleMsg, err := importRules(ctx, st, o)
		if err != nil {
			return err
		}
		for _, n := range c.Notes {
			fmt.Fprintln(out, n)
		}
		for _, n := range c.Checks {
			fmt.Fprintln(out, n)
		}
		summary := fmt.Sprintf("users: %d new, %d updated, %d skipped; rules: %s; %d item(s) not carried over or rewritten (see above)",
			created, updated, skipped, ruleMsg, len(c.Notes))
		if len(c.Checks) > 0 {
			summary += fmt.Sprintf("; %d rule(s) to check (see above)", len(c.Checks))
		}
		if o.DryRun {
			summary = "Dry run, nothing written: " + summary
		} else {
			summary = "Done: " + summary
		}
		fmt.Fprintln(out, summary)
		return nil
	})
}

// importRules imports the static acl and returns a summary.
func importRules(ctx context.Context, st store.Store, o *ImportDockerAuthOptions) (string, error) {
	c, out := o.Config, o.IO.ErrOut
	if !c.HasACL {
		return "no acl in the file", nil
	}
	if _, err := acl.Compile(c.Rules); err != nil {
		return "", cmdutil.OneLine(err)
	}
	old, err := st.ListRules(ctx)
	if err != nil {
		return "", cmdutil.StoreErr(err, "rules")
	}
	diff := diffRules(old, c.Rules)
	switch {
	case len(diff) == 0:
		return fmt.Sprintf("the store already holds the acl's %d", len(c.Rules)), nil
	case len(old) > 0 && !o.Update:
		fmt.Fprintf(out, "Skipped the acl (%d rule(s)): the store already has %d different rule(s) (pass --update to replace them)\n", len(c.Rules), len(old))
		return "acl skipped", nil
	}
	if !o.DryRun {
		if err := st.ReplaceRules(ctx, c.Rules); err != nil {
			return "", cmdutil.StoreErr(err, "rules")
		}
	}
	fmt.Fprintf(out, "%s %d rule(s) with the acl's %d rule(s):\n", cmdutil.Would(o.DryRun, "Replaced", "replace"), len(old), len(c.Rules))
	for _, line := range diff {
		fmt.Fprintln(out, line)
	}
	return fmt.Sprintf("%d imported", len(c.Rules)), nil
}

func labelsSuffix(labels map[string][]string) string {
	if len(labels) == 0 {
		return ""
	}
	return " (labels " + strings.Join(cmdutil.LabelPairs(labels), ", ") + ")"
}

func labelsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
