package cli

import (
	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// NewCmdCompletion builds `regctl completion`, which replaces cobra's
// default so that it has examples like every other command.
func NewCmdCompletion(f *cmdutil.Factory) *cobra.Command {
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
