// Package acl is `regctl acl` (the rules: list, add, remove, defaults,
// import, export, explain) and `regctl import docker-auth`.
package acl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/store"
)

// NewCmdACL builds `regctl acl`.
func NewCmdACL(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage docker_auth-style ACL rules and explain decisions",
		Long: `Rules follow docker_auth: they are tried in seq order and the first whose
conditions all match decides. A user's own grants (regctl user grant) add to
what the rules allow. regctl acl explain shows how a request is decided.`,
		Example: `  regctl acl defaults
  regctl acl add --seq 30 --account ci-bot --name 'ci/*' --actions pull,push
  regctl acl explain waldi push team/app`,
	}
	cmd.AddCommand(
		NewCmdList(f, nil),
		NewCmdAdd(f, nil),
		NewCmdRemove(f, nil),
		NewCmdDefaults(f, nil),
		NewCmdImport(f, nil),
		NewCmdExport(f, nil),
		NewCmdExplain(f, nil),
	)
	return cmd
}

// ListOptions are `regctl acl list`'s settings.
type ListOptions struct {
	cmdutil.Deps

	Output string
}

// NewCmdList builds `regctl acl list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the rules in seq order",
		Long: `List the rules in the order they are tried. MATCH shows each condition as
field=pattern, "(any)" for a rule without conditions; ACTIONS "(deny)" is an
explicit deny. --output json or yaml prints the rules as regctl acl import
reads them.`,
		Example: "  regctl acl list\n  regctl acl list -o yaml > rules.yaml",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckOutput(o.Output, cmdutil.FormatTable, cmdutil.FormatJSON, cmdutil.FormatYAML); err != nil {
				return err
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return listRun(cmd.Context(), o)
		},
	}
	cmdutil.AddOutputFlag(cmd, &o.Output, cmdutil.FormatTable, cmdutil.FormatJSON, cmdutil.FormatYAML)
	return cmd
}

func listRun(ctx context.Context, o *ListOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		rules, err := st.ListRules(ctx)
		if err != nil {
			return cmdutil.StoreErr(err, "rules")
		}
		if o.Output != cmdutil.FormatTable {
			return cmdutil.WriteData(o.IO.Out, o.Output, exportRules(rules))
		}
		if len(rules) == 0 {
			fmt.Fprintln(o.IO.ErrOut, "No rules. Install the classic label rules with: regctl acl defaults")
			return nil
		}
		now, loc := o.Now(), o.Loc()
		t := cmdutil.NewTable("SEQ", "MATCH", "ACTIONS", "EXPIRES", "COMMENT")
		for _, r := range rules {
			t.Row(strconv.FormatInt(r.Seq, 10), cmdutil.FormatMatch(r.Match), cmdutil.FormatActions(r.Actions),
				cmdutil.FormatExpiry(r.ExpiresAt, now, loc), r.Comment)
		}
		return t.Render(o.IO.Out)
	})
}

// exportRules prepares rules for JSON and YAML: UTC times, and actions
// never null (an empty list is an explicit deny).
func exportRules(rules []acl.Rule) []acl.Rule {
	out := make([]acl.Rule, len(rules))
	for i, r := range rules {
		r.ExpiresAt = cmdutil.UTC(r.ExpiresAt)
		if r.Actions == nil {
			r.Actions = []string{}
		}
		out[i] = r
	}
	return out
}

// ExportOptions are `regctl acl export`'s settings.
type ExportOptions struct {
	cmdutil.Deps

	Output string
}

// NewCmdExport builds `regctl acl export`.
func NewCmdExport(f *cmdutil.Factory, runF func(context.Context, *ExportOptions) error) *cobra.Command {
	o := &ExportOptions{}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print all rules as YAML or JSON, as regctl acl import reads them",
		Long: `Print the whole rule set as a docker_auth-style list of {seq, match, actions,
comment, expires_at}: regctl acl import reads it back unchanged, so
export, edit, import is a safe way to make many changes at once.`,
		Example: "  regctl acl export > rules.yaml\n  regctl acl export -o json | jq '.[] | select(.actions == [])'",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckOutput(o.Output, cmdutil.FormatYAML, cmdutil.FormatJSON); err != nil {
				return err
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return listRun(cmd.Context(), &ListOptions{Deps: o.Deps, Output: o.Output})
		},
	}
	cmdutil.AddOutputFlag(cmd, &o.Output, cmdutil.FormatYAML, cmdutil.FormatJSON)
	return cmd
}

// AddOptions are `regctl acl add`'s settings.
type AddOptions struct {
	cmdutil.Deps

	Rule acl.Rule
	// AutoSeq: no --seq given; the rule goes after the last one.
	AutoSeq bool
	DryRun  bool
}

// NewCmdAdd builds `regctl acl add`.
func NewCmdAdd(f *cmdutil.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	var account, name, typ, service, ip, actions, expires, comment string
	var labels []string
	var deny bool
	var seq int64
	o := &AddOptions{}
	cmd := &cobra.Command{
		Use:   "add --actions A[,A] | --deny [--seq N] [conditions]",
		Short: "Add a rule",
		Long: `Add a rule. Its conditions are ANDed; a condition not given matches anything.
Patterns are globs ('*' and '?' do not cross '/') or anchored /regular
expressions/, and may use ${account}, ${name}, ${type}, ${service} and
${labels:KEY}. --ip takes an address or CIDR prefix.

--actions lists what the rule allows: '*' alone allows everything requested,
while '*' among other actions allows only those and a requested '*' (as in
docker_auth). --deny adds an explicit deny instead: it matches, stops the
search, and allows nothing (it never takes away a user's own grants). Without --seq the rule
goes after the last one (10 more than the highest seq). The whole rule set is
validated before anything is written.`,
		Example: `  regctl acl add --seq 30 --account ci-bot --name 'ci/*' --actions pull,push --comment "CI pushes its images"
  regctl acl add --seq 5 --name 'secret/*' --deny --comment "nobody but explicit grants"
  regctl acl add --label team='*' --name '${labels:team}/*' --actions pull --expires 2027-01-01`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			r := acl.Rule{Seq: seq, Comment: comment}
			set := func(flag string, v string) *string {
				if !fl.Changed(flag) {
					return nil
				}
				return &v
			}
			r.Match = acl.Match{Account: set("account", account), Name: set("name", name), Type: set("type", typ),
				Service: set("service", service), IP: set("ip", ip)}
			for _, kv := range labels {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return cmdutil.FlagErrorf("--label %q: want KEY=PATTERN", kv)
				}
				if r.Match.Labels == nil {
					r.Match.Labels = map[string]string{}
				}
				if _, dup := r.Match.Labels[k]; dup {
					return cmdutil.FlagErrorf("--label %s given twice: a rule has one pattern per label key", k)
				}
				r.Match.Labels[k] = v
			}
			switch {
			case deny && fl.Changed("actions"):
				return cmdutil.FlagErrorf("--deny and --actions are mutually exclusive")
			case deny:
				r.Actions = []string{}
			default:
				var err error
				if r.Actions, err = cmdutil.ParseActions(actions); err != nil {
					return cmdutil.FlagErrorf("--actions is required (pull, push, delete or *, comma separated), or --deny for an explicit deny")
				}
			}
			var err error
			if r.ExpiresAt, err = cmdutil.ParseExpiry("expires", expires, f.Now()); err != nil {
				return err
			}
			o.AutoSeq = !fl.Changed("seq")
			if !o.AutoSeq && seq < 0 {
				return cmdutil.FlagErrorf("--seq %d: use a number >= 0", seq)
			}
			if err := r.Validate(); err != nil {
				if o.AutoSeq {
					err = withoutSeq(err)
				}
				return &cmdutil.FlagError{Err: cmdutil.OneLine(err)}
			}
			o.Rule = r
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return addRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&seq, "seq", 0, "position: rules are tried in ascending seq (default: 10 after the last rule)")
	fl.StringVar(&account, "account", "", "account (user name) pattern")
	fl.StringVar(&name, "name", "", "repository name pattern")
	fl.StringVar(&typ, "type", "", "resource type pattern (repository or registry)")
	fl.StringVar(&service, "service", "", "service pattern (the registry's auth.token.service)")
	fl.StringVar(&ip, "ip", "", "client IP address or CIDR prefix")
	fl.StringArrayVar(&labels, "label", nil, "label condition KEY=PATTERN: one of the user's values for KEY must match (repeatable)")
	fl.StringVar(&actions, "actions", "", "comma-separated actions the rule allows: pull, push, delete, *")
	fl.BoolVar(&deny, "deny", false, "an explicit deny: the rule allows nothing and stops the search")
	fl.StringVar(&comment, "comment", "", "free text shown by acl list")
	fl.StringVar(&expires, "expires", "", "rule expiry: RFC 3339 date or time, or a duration such as 30d")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	_ = cmd.RegisterFlagCompletionFunc("actions", cmdutil.CompleteActions)
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"repository", "registry"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func addRun(ctx context.Context, o *AddOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		rules, err := st.ListRules(ctx)
		if err != nil {
			return cmdutil.StoreErr(err, "rules")
		}
		r := o.Rule
		if o.AutoSeq {
			r.Seq = 10
			if len(rules) > 0 {
				r.Seq = (rules[len(rules)-1].Seq/10 + 1) * 10
			}
		}
		if i := slices.IndexFunc(rules, func(x acl.Rule) bool { return x.Seq == r.Seq }); i >= 0 {
			return fmt.Errorf("rule seq %d already exists (%s): remove it with regctl acl remove %d, or choose another --seq",
				r.Seq, cmdutil.DescribeRule(rules[i]), r.Seq)
		}
		if _, err := acl.Compile(append(slices.Clone(rules), r)); err != nil {
			return cmdutil.OneLine(err)
		}
		if !o.DryRun {
			if err := st.AddRule(ctx, r); err != nil {
				return cmdutil.StoreErr(err, fmt.Sprintf("rule seq %d", r.Seq))
			}
		}
		fmt.Fprintf(o.IO.ErrOut, "%s rule %s\n", cmdutil.Would(o.DryRun, "Added", "add"), cmdutil.DescribeRule(r))
		if cmdutil.FormatMatch(r.Match) == "(any)" {
			fmt.Fprintln(o.IO.ErrOut, "Note: the rule has no conditions: it matches every request, so rules after it are never consulted")
		}
		if note := acl.MixedActionsNote(r.Actions); note != "" {
			fmt.Fprintf(o.IO.ErrOut, "Note: %s; to allow everything use --actions '*'\n", note)
		}
		return nil
	})
}

// withoutSeq rewrites Validate's errors for a rule whose seq is not chosen
// yet: "rule: ..." instead of "rule seq 0: ...".
func withoutSeq(err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
		var re *acl.RuleError
		if errors.As(e, &re) {
			out[i] = fmt.Errorf("rule: %w", re.Err)
		}
	}
	return errors.Join(out...)
}

// printMixedActionsNotes prints a note for each rule whose actions list
// "*" among others.
func printMixedActionsNotes(w io.Writer, rules []acl.Rule) {
	for _, r := range rules {
		if note := acl.MixedActionsNote(r.Actions); note != "" {
			fmt.Fprintf(w, "Note: rule seq %d: %s\n", r.Seq, note)
		}
	}
}

// RemoveOptions are `regctl acl remove`'s settings.
type RemoveOptions struct {
	cmdutil.Deps

	Seq    int64
	DryRun bool
}

// NewCmdRemove builds `regctl acl remove`.
func NewCmdRemove(f *cmdutil.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{}
	cmd := &cobra.Command{
		Use:               "remove SEQ",
		Aliases:           []string{"rm"},
		Short:             "Remove the rule with seq SEQ",
		Example:           "  regctl acl remove 30",
		Args:              cmdutil.ExactArgs(1),
		ValidArgsFunction: cmdutil.CompleteSeqs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return cmdutil.FlagErrorf("seq %q: want a number (see regctl acl list)", args[0])
			}
			o.Seq = seq
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return removeRun(cmd.Context(), o)
		},
	}
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func removeRun(ctx context.Context, o *RemoveOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		rules, err := st.ListRules(ctx)
		if err != nil {
			return cmdutil.StoreErr(err, "rules")
		}
		i := slices.IndexFunc(rules, func(r acl.Rule) bool { return r.Seq == o.Seq })
		if i < 0 {
			return fmt.Errorf("rule seq %d not found (see regctl acl list)", o.Seq)
		}
		if !o.DryRun {
			if err := st.RemoveRule(ctx, o.Seq); err != nil {
				return cmdutil.StoreErr(err, fmt.Sprintf("rule seq %d", o.Seq))
			}
		}
		fmt.Fprintf(o.IO.ErrOut, "%s rule %s\n", cmdutil.Would(o.DryRun, "Removed", "remove"), cmdutil.DescribeRule(rules[i]))
		return nil
	})
}

// DefaultsOptions are `regctl acl defaults`'s settings.
type DefaultsOptions struct {
	cmdutil.Deps

	Force  bool
	DryRun bool
}

// NewCmdDefaults builds `regctl acl defaults`.
func NewCmdDefaults(f *cmdutil.Factory, runF func(context.Context, *DefaultsOptions) error) *cobra.Command {
	o := &DefaultsOptions{}
	cmd := &cobra.Command{
		Use:   "defaults",
		Short: "Install the classic full-access and read-only-access label rules",
		Long: `Install the two classic docker_auth label rules:

  seq 10  name=${labels:full-access}       -> *
  seq 20  name=${labels:read-only-access}  -> pull

so that a user labelled full-access='test/*' may do everything on test/...
and one labelled read-only-access='prod/*' may pull prod/.... Running it
again changes nothing. A different rule at seq 10 or 20 is left alone unless
--force replaces it.`,
		Example: "  regctl acl defaults\n  regctl user label set waldi full-access='test/*'",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return defaultsRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace different rules at seq 10 and 20")
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

// sameRule reports whether two rules decide alike: the comment does not
// count.
func sameRule(a, b acl.Rule) bool {
	return a.Seq == b.Seq && matchEqual(a.Match, b.Match) && slices.Equal(a.Actions, b.Actions) &&
		(a.Actions == nil) == (b.Actions == nil) && cmdutil.TimePtrEqual(a.ExpiresAt, b.ExpiresAt)
}

func matchEqual(a, b acl.Match) bool {
	eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.Account, b.Account) && eq(a.Type, b.Type) && eq(a.Name, b.Name) && eq(a.Service, b.Service) &&
		eq(a.IP, b.IP) && maps.Equal(a.Labels, b.Labels)
}

func defaultsRun(ctx context.Context, o *DefaultsOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		rules, err := st.ListRules(ctx)
		if err != nil {
			return cmdutil.StoreErr(err, "rules")
		}
		var add, replace []acl.Rule
		var conflicts []string
		for _, d := range acl.DefaultRules() {
			i := slices.IndexFunc(rules, func(r acl.Rule) bool { return r.Seq == d.Seq })
			switch {
			case i < 0:
				add = append(add, d)
			case sameRule(rules[i], d):
				fmt.Fprintf(o.IO.ErrOut, "No change: rule %d is already installed\n", d.Seq)
			case o.Force:
				replace = append(replace, d)
				fmt.Fprintf(o.IO.ErrOut, "%s rule %s (was %s)\n", cmdutil.Would(o.DryRun, "Replaced", "replace"), cmdutil.DescribeRule(d), cmdutil.DescribeRule(rules[i]))
			default:
				conflicts = append(conflicts, cmdutil.DescribeRule(rules[i]))
			}
		}
		if len(conflicts) > 0 {
			return fmt.Errorf("seq %s taken by a different rule (%s): pass --force to replace, or move it with acl remove and acl add",
				strings.Join(seqsOf(conflicts), " and "), strings.Join(conflicts, "; "))
		}
		next := slices.Clone(rules)
		for _, d := range replace {
			next = slices.DeleteFunc(next, func(r acl.Rule) bool { return r.Seq == d.Seq })
		}
		if _, err := acl.Compile(append(next, append(add, replace...)...)); err != nil {
			return cmdutil.OneLine(err)
		}
		if o.DryRun {
			for _, d := range add {
				fmt.Fprintf(o.IO.ErrOut, "Would add rule %s\n", cmdutil.DescribeRule(d))
			}
			return nil
		}
		for _, d := range replace {
			if err := st.RemoveRule(ctx, d.Seq); err != nil && !errors.Is(err, store.ErrNotFound) {
				return cmdutil.StoreErr(err, fmt.Sprintf("rule seq %d", d.Seq))
			}
			if err := st.AddRule(ctx, d); err != nil {
				return cmdutil.StoreErr(err, fmt.Sprintf("rule seq %d", d.Seq))
			}
		}
		for _, d := range add {
			if err := st.AddRule(ctx, d); err != nil {
				return cmdutil.StoreErr(err, fmt.Sprintf("rule seq %d", d.Seq))
			}
			fmt.Fprintf(o.IO.ErrOut, "Added rule %s\n", cmdutil.DescribeRule(d))
		}
		return nil
	})
}

// seqsOf extracts "10" from "seq 10: ..." descriptions.
func seqsOf(descs []string) []string {
	out := make([]string, len(descs))
	for i, d := range descs {
		s, _, _ := strings.Cut(strings.TrimPrefix(d, "seq "), ":")
		out[i] = s
	}
	return out
}

// ImportOptions are `regctl acl import`'s settings.
type ImportOptions struct {
	cmdutil.Deps

	File   string
	Rules  []acl.Rule
	DryRun bool
}

// NewCmdImport builds `regctl acl import`.
func NewCmdImport(f *cmdutil.Factory, runF func(context.Context, *ImportOptions) error) *cobra.Command {
	o := &ImportOptions{}
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Replace all rules with those in FILE (YAML or JSON, '-' for stdin)",
		Long: `Replace the whole rule set with the docker_auth-style rules in FILE, a YAML
or JSON list of {seq, match: {account, type, name, service, ip, labels},
actions, comment, expires_at} as regctl acl export writes it. The file is
validated as a whole before anything is written: an unknown key, a missing
actions list, a bad regular expression or a duplicate seq is an error naming
the rule. It prints which rules were added, removed and changed.`,
		Example: `  cat > rules.yaml <<'YAML'
  - seq: 10
    match: {name: "${labels:full-access}"}
    actions: ["*"]
  - seq: 20
    match: {name: "${labels:read-only-access}"}
    actions: ["pull"]
  YAML
  regctl acl import rules.yaml
  regctl acl export > rules.yaml && $EDITOR rules.yaml && regctl acl import rules.yaml --dry-run`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			data, err := cmdutil.ReadFileOrStdin(f.IO, o.File)
			if err != nil {
				return err
			}
			if o.Rules, err = acl.DecodeRules(data); err != nil {
				return fmt.Errorf("%s: %w", o.File, err)
			}
			if _, err := acl.Compile(o.Rules); err != nil {
				return fmt.Errorf("%s: %w", o.File, cmdutil.OneLine(err))
			}
			o.Deps = f.Deps()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return importRun(cmd.Context(), o)
		},
	}
	cmdutil.AddDryRunFlag(cmd, &o.DryRun)
	return cmd
}

func importRun(ctx context.Context, o *ImportOptions) error {
	return o.WithStore(ctx, func(st store.Store) error {
		old, err := st.ListRules(ctx)
		if err != nil {
			return cmdutil.StoreErr(err, "rules")
		}
		defer printMixedActionsNotes(o.IO.ErrOut, o.Rules)
		diff := diffRules(old, o.Rules)
		if len(diff) == 0 {
			fmt.Fprintf(o.IO.ErrOut, "No change: the store already holds the %d rule(s) of %s\n", len(o.Rules), o.File)
			return nil
		}
		if !o.DryRun {
			if err := st.ReplaceRules(ctx, o.Rules); err != nil {
				return cmdutil.StoreErr(err, "rules")
			}
		}
		fmt.Fprintf(o.IO.ErrOut, "%s %d rule(s) with %d rule(s) from %s:\n", cmdutil.Would(o.DryRun, "Replaced", "replace"), len(old), len(o.Rules), o.File)
		for _, line := range diff {
			fmt.Fprintln(o.IO.ErrOut, line)
		}
		return nil
	})
}

// diffRules lists what replacing old with next changes, one line per
// seq: "+ seq 30: ...", "- seq 40: ...", "~ seq 10: ... (was ...)".
func diffRules(old, next []acl.Rule) []string {
	bySeq := func(rules []acl.Rule) map[int64]acl.Rule {
		m := make(map[int64]acl.Rule, len(rules))
		for _, r := range rules {
			m[r.Seq] = r
		}
		return m
	}
	o, n := bySeq(old), bySeq(next)
	seqs := slices.Collect(maps.Keys(o))
	for s := range n {
		if _, ok := o[s]; !ok {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	var out []string
	for _, s := range seqs {
		a, inOld := o[s]
		b, inNew := n[s]
		switch {
		case !inOld:
			out = append(out, "  + "+cmdutil.DescribeRule(b))
		case !inNew:
			out = append(out, "  - "+cmdutil.DescribeRule(a))
		case !sameRule(a, b) || a.Comment != b.Comment:
			out = append(out, "  ~ "+cmdutil.DescribeRule(b)+" (was "+strings.TrimPrefix(cmdutil.DescribeRule(a), fmt.Sprintf("seq %d: ", s))+")")
		}
	}
	return out
}
