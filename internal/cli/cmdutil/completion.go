package cmdutil

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/store"
)

// completionTimeout bounds the store queries of dynamic completion: a
// shell waiting on a dead store is worse than no suggestions.
const completionTimeout = 2 * time.Second

// WithCompletionStore runs fn on the store for shell completion. Any
// error (no store configured, unreachable) yields no suggestions.
func WithCompletionStore(cmd *cobra.Command, f *Factory, fn func(context.Context, store.Store) []string) []string {
	// The hidden __complete command skips the flag that names a config
	// file; read it from the command being completed.
	if err := LoadConfig(cmd, f); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	var out []string
	_ = WithStore(ctx, f, func(st store.Store) error {
		out = fn(ctx, st)
		return nil
	})
	return out
}

// CompleteUsers completes the first argument with user names.
func CompleteUsers(f *Factory) cobra.CompletionFunc {
	return CompleteUserThen(f, nil)
}

// CompleteUserThen completes the first argument with user names and the
// later ones with next(user, args), if next is not nil.
func CompleteUserThen(f *Factory, next func(context.Context, *store.User, []string) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return WithCompletionStore(cmd, f, func(ctx context.Context, st store.Store) []string {
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
		return WithCompletionStore(cmd, f, func(ctx context.Context, st store.Store) []string {
			u, err := st.GetUser(ctx, args[0])
			if err != nil {
				return nil
			}
			return next(ctx, u, args)
		}), cobra.ShellCompDirectiveNoFileComp
	}
}

// CompleteSeqs completes rule seqs, described by their conditions.
func CompleteSeqs(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return WithCompletionStore(cmd, f, func(ctx context.Context, st store.Store) []string {
			rules, err := st.ListRules(ctx)
			if err != nil {
				return nil
			}
			out := make([]string, 0, len(rules))
			for _, r := range rules {
				out = append(out, strconv.FormatInt(r.Seq, 10)+"\t"+fmt.Sprintf("%s -> %s", FormatMatch(r.Match), FormatActions(r.Actions)))
			}
			return out
		}), cobra.ShellCompDirectiveNoFileComp
	}
}

// CompleteActions completes --actions values.
func CompleteActions(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []string{"pull", "pull,push", "pull,push,delete", "*"}, cobra.ShellCompDirectiveNoFileComp
}
