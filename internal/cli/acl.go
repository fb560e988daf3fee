package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// NewCmdACL builds `regctl acl`.
func NewCmdACL(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "acl", Short: "Manage docker_auth-style ACL rules"}
	cmd.AddCommand(NewCmdACLImport(f, nil))
	return cmd
}

// ACLImportOptions are `regctl acl import`'s settings.
type ACLImportOptions struct {
	File   string
	Rules  []acl.Rule
	DryRun bool
}

// NewCmdACLImport builds `regctl acl import`.
func NewCmdACLImport(f *Factory, runF func(context.Context, *ACLImportOptions) error) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Replace all rules with those in FILE (YAML or JSON, '-' for stdin)",
		Long: `Replace the whole rule set with the docker_auth-style rules in FILE, a YAML
or JSON list of {seq, match: {account, type, name, service, ip, labels},
actions, comment, expires_at}. The file is validated as a whole before
anything is written: an unknown key, a missing actions list, a bad regular
expression or a duplicate seq is an error naming the rule.`,
		Example: `  cat > rules.yaml <<'YAML'
  - seq: 10
    match: {name: "${labels:full-access}"}
    actions: ["*"]
  - seq: 20
    match: {name: "${labels:read-only-access}"}
    actions: ["pull"]
  YAML
  regctl acl import rules.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := &ACLImportOptions{File: args[0], DryRun: dryRun}
			data, err := readFileOrStdin(f.IO, o.File)
			if err != nil {
				return err
			}
			if o.Rules, err = DecodeRules(data); err != nil {
				return fmt.Errorf("%s: %w", o.File, err)
			}
			if _, err := acl.Compile(o.Rules); err != nil {
				return fmt.Errorf("%s: %w", o.File, err)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return aclImportRun(cmd.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show what would change, write nothing")
	return cmd
}

func aclImportRun(ctx context.Context, f *Factory, o *ACLImportOptions) error {
	return withStore(ctx, f, func(st store.Store) error {
		old, err := st.ListRules(ctx)
		if err != nil {
			return err
		}
		if o.DryRun {
			fmt.Fprintf(f.IO.ErrOut, "Would replace %d rule(s) with %d rule(s) from %s\n", len(old), len(o.Rules), o.File)
			return nil
		}
		if err := st.ReplaceRules(ctx, o.Rules); err != nil {
			return err
		}
		fmt.Fprintf(f.IO.ErrOut, "Replaced %d rule(s) with %d rule(s) from %s\n", len(old), len(o.Rules), o.File)
		return nil
	})
}

// DecodeRules strictly decodes a YAML or JSON list of rules: unknown keys
// are errors.
func DecodeRules(data []byte) ([]acl.Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rules []acl.Rule
	if err := dec.Decode(&rules); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no rules found (want a YAML or JSON list)")
		}
		return nil, err
	}
	return rules, nil
}

func readFileOrStdin(ios *IOStreams, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(ios.In, 64<<20))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return data, nil
}
