package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/store"
)

// NewCmdCompletion builds `regctl completion`, which replaces cobra's
// default so that it has examples like every other command.
func NewCmdCompletion(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a completion script for bash, zsh, fish or PowerShell. Besides
commands and flags it completes user names, grant patterns, label keys and
rule seqs from the store (--store, REGCTL_STORE or the config file); when the
store cannot be reached it silently offers none.`,
		Example: `  # bash, for the current shell and for new ones:
  source <(regctl completion bash)
  regctl completion bash > /etc/bash_completion.d/regctl
  # zsh:
  regctl completion zsh > "${fpath[1]}/_regctl"
  # fish:
  regctl completion fish > ~/.config/fish/completions/regctl.fish`,
		Args:                  cmdutil.ExactArgs(1),
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), f.IO.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return cmdutil.FlagErrorf("unsupported shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
	return cmd
}

// completionTimeout bounds the store queries of dynamic completion: a
// shell waiting on a dead store is worse than no suggestions.
const completionTimeout = 2 * time.Second

// withCompletionStore runs fn on the store for shell completion. Any
// error (no store configured, unreachable) yields no suggestions.
func withCompletionStore(cmd *cobra.Command, f *Factory, fn func(context.Context, store.Store) []string) []string {
	// The hidden __complete command skips the flag that names a config
	// file; read it from the command being completed.
	if err := loadConfig(cmd, f); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	var out []string
	_ = withStore(ctx, f, func(st store.Store) error {
		out = fn(ctx, st)
		return nil
	})
	return out
}

// completeUsers completes the first argument with user names.
func completeUsers(f *Factory) cobra.CompletionFunc {
	return completeUserThen(f, nil)
}

// completeUserThen completes the first argument with user names and the
// later ones with next(user, args), if next is not nil.
func completeUserThen(f *Factory, next func(context.Context, *store.User, []string) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return withCompletionStore(cmd, f, func(ctx context.Context, st store.Store) []string {
				users, err := st.ListUsers(ctx)
				if err != nil {
					return nil
				}
				now := f.Now()
				out := make([]string, 0, len(users))
				for i := range users {
					out = append(out, users[i].Username+"\t"+string(users[i].Status(now)))
				}
				return out
			}), cobra.ShellCompDirectiveNoFileComp
		}
		if next == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return withCompletionStore(cmd, f, func(ctx context.Context, st store.Store) []string {
			u, err := st.GetUser(ctx, args[0])
			if err != nil {
				return nil
			}
			return next(ctx, u, args)
		}), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeSeqs completes rule seqs, described by their conditions.
func completeSeqs(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return withCompletionStore(cmd, f, func(ctx context.Context, st store.Store) []string {
			rules, err := st.ListRules(ctx)
			if err != nil {
				return nil
			}
			out := make([]string, 0, len(rules))
			for _, r := range rules {
				out = append(out, strconv.FormatInt(r.Seq, 10)+"\t"+fmt.Sprintf("%s -> %s", formatMatch(r.Match), formatActions(r.Actions)))
			}
			return out
		}), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeActions completes --actions values.
func completeActions(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []string{"pull", "pull,push", "pull,push,delete", "*"}, cobra.ShellCompDirectiveNoFileComp
}
