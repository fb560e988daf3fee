package acl

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
)

// The tests in this file check flag and argument parsing only: each
// command gets a runF that captures its options, as in cli/cli.

func TestNewCmdACLAdd(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdAdd, []cmdtest.FlagCase[AddOptions]{
		{Name: "full", Args: []string{"--seq", "30", "--account", "ci-bot", "--name", "ci/*", "--type", "repository",
			"--service", "registry.example.com", "--ip", "10.0.0.0/8", "--label", "team=ci", "--label", "env=/prod|dev/",
			"--actions", "pull,push", "--comment", "CI", "--expires", "2027-01-01"},
			Check: func(t *testing.T, o *AddOptions) {
				r := o.Rule
				if o.AutoSeq || r.Seq != 30 || *r.Match.Account != "ci-bot" || *r.Match.Name != "ci/*" || *r.Match.Type != "repository" ||
					*r.Match.Service != "registry.example.com" || *r.Match.IP != "10.0.0.0/8" || r.Match.Labels["env"] != "/prod|dev/" ||
					!slices.Equal(r.Actions, []string{"pull", "push"}) || r.Comment != "CI" || r.ExpiresAt == nil {
					t.Errorf("got %+v", o)
				}
			}},
		{Name: "deny, auto seq, empty account", Args: []string{"--account", "", "--deny"}, Check: func(t *testing.T, o *AddOptions) {
			r := o.Rule
			if !o.AutoSeq || r.Actions == nil || len(r.Actions) != 0 || r.Match.Account == nil || *r.Match.Account != "" || r.Match.Name != nil {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "deny and actions", Args: []string{"--deny", "--actions", "pull"}, WantErr: "mutually exclusive"},
		{Name: "no actions", Args: []string{"--name", "x"}, WantErr: "--actions is required (pull, push, delete or *, comma separated), or --deny"},
		{Name: "bad regex", Args: []string{"--name", "/[/", "--actions", "pull"}, WantErr: "rule: match.name: invalid regular expression"},
		{Name: "bad ip", Args: []string{"--seq", "5", "--ip", "10.0.0.0/33", "--actions", "pull"}, WantErr: "rule seq 5: match.ip"},
		{Name: "costly regex", Args: []string{"--name", "/(x?){1000}/", "--actions", "pull"},
			WantErr: "rule: match.name: regular expression /(x?){1000}/ (4004 instructions) may take 898212 steps to match a 255-character value, more than the 16384"},
		{Name: "costly account regex", Args: []string{"--seq", "7", "--account", "/(?i)[a-z]{1,1000}q/", "--actions", "pull"},
			WantErr: "rule seq 7: match.account: regular expression /(?i)[a-z]{1,1000}q/ (2004 instructions) may take"},
		{Name: "unknown variable", Args: []string{"--name", "${user}/*", "--actions", "pull"}, WantErr: "match.name"},
		{Name: "bad label", Args: []string{"--label", "team", "--actions", "pull"}, WantErr: "want KEY=PATTERN"},
		{Name: "duplicate label", Args: []string{"--label", "a=b", "--label", "a=c", "--actions", "pull"}, WantErr: "--label a given twice"},
		{Name: "negative seq", Args: []string{"--seq", "-1", "--actions", "pull"}, WantErr: "use a number >= 0"},
		{Name: "seq not a number", Args: []string{"--seq", "x", "--actions", "pull"}, WantErr: "invalid argument"},
		{Name: "past expiry", Args: []string{"--actions", "pull", "--expires", "2020-01-01"}, WantErr: "lies in the past"},
	})
}

func TestNewCmdACLOther(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdRemove, []cmdtest.FlagCase[RemoveOptions]{
		{Name: "ok", Args: []string{"30", "--dry-run"}, Check: func(t *testing.T, o *RemoveOptions) {
			if o.Seq != 30 || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "not a number", Args: []string{"ten"}, WantErr: `seq "ten": want a number`},
		{Name: "missing", WantErr: "accepts 1 arg"},
	})
	cmdtest.TestFlags(t, NewCmdList, []cmdtest.FlagCase[ListOptions]{
		{Name: "json", Args: []string{"-o", "json"}},
		{Name: "bad", Args: []string{"-o", "csv"}, WantErr: "--output"},
	})
	cmdtest.TestFlags(t, NewCmdExport, []cmdtest.FlagCase[ExportOptions]{
		{Name: "default yaml", Check: func(t *testing.T, o *ExportOptions) {
			if o.Output != "yaml" {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "table is not an export format", Args: []string{"-o", "table"}, WantErr: "use yaml, json"},
	})
	cmdtest.TestFlags(t, NewCmdDefaults, []cmdtest.FlagCase[DefaultsOptions]{
		{Name: "force", Args: []string{"--force", "--dry-run"}, Check: func(t *testing.T, o *DefaultsOptions) {
			if !o.Force || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
	})
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("- seq: 10\n  match: {name: \"${labels:full-access}\"}\n  actions: [\"*\"]\n"), 0o644)
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("- seq: 10\n  match: {acount: alice}\n  actions: [\"*\"]\n"), 0o644)
	dup := filepath.Join(dir, "dup.yaml")
	os.WriteFile(dup, []byte("- {seq: 10, match: {}, actions: []}\n- {seq: 10, match: {name: x}, actions: [pull]}\n"), 0o644)
	costly := filepath.Join(dir, "costly.yaml")
	os.WriteFile(costly, []byte(`- {seq: 1, match: {name: "/(x?){1000}/"}, actions: [pull]}
- {seq: 2, match: {account: "/(x?){1000}/"}, actions: [pull]}
- {seq: 3, match: {name: "/(?i)[a-z]{1,1000}q/"}, actions: [pull]}
`), 0o644)
	cmdtest.TestFlags(t, NewCmdImport, []cmdtest.FlagCase[ImportOptions]{
		{Name: "file", Args: []string{good}, Check: func(t *testing.T, o *ImportOptions) {
			if len(o.Rules) != 1 || o.Rules[0].Seq != 10 {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "stdin", Args: []string{"-", "--dry-run"}, Stdin: `[{"seq": 5, "match": {"account": "a"}, "actions": []}]`, Check: func(t *testing.T, o *ImportOptions) {
			if len(o.Rules) != 1 || o.Rules[0].Actions == nil || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "unknown key", Args: []string{typo}, WantErr: "field acount not found", WantCode: cmdutil.ExitError},
		{Name: "duplicate seq", Args: []string{dup}, WantErr: "duplicate seq", WantCode: cmdutil.ExitError},
		{Name: "costly regexes", Args: []string{costly}, WantCode: cmdutil.ExitError,
			WantErr: "rule seq 1: match.name: regular expression /(x?){1000}/ (4004 instructions) may take 898212 steps to match a 255-character value, " +
				"more than the 16384 that deciding one scope of a request (of up to 64) may take; shorten it, give it a literal prefix, or avoid counted repetition {n,m} of optional or large groups; " +
				"rule seq 2: match.account: regular expression /(x?){1000}/ (4004 instructions) may take 898212 steps"},
		{Name: "missing file", Args: []string{filepath.Join(dir, "nope")}, WantErr: "no such file", WantCode: cmdutil.ExitError},
		{Name: "empty", Args: []string{"-"}, WantErr: "no rules found", WantCode: cmdutil.ExitError},
	})
}

func TestNewCmdACLExplain(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdExplain, []cmdtest.FlagCase[ExplainOptions]{
		{Name: "positional", Args: []string{"waldi", "push,pull", "team/app"}, Check: func(t *testing.T, o *ExplainOptions) {
			if len(o.Scopes) != 1 || o.Scopes[0].String() != "repository:team/app:pull,push" {
				t.Errorf("scopes %v", o.Scopes)
			}
			if o.Service != "registry.example.com" || o.IP.IsValid() || !o.At.IsZero() || o.Output != "text" {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "scopes merge", Args: []string{"waldi", "--scope", "repository:a/b:pull", "--scope", "repository:a/b:push registry:catalog:*",
			"--service", "other", "--ip", "::ffff:10.1.2.3", "--at", "2027-01-01T10:00:00Z", "-o", "json"},
			Check: func(t *testing.T, o *ExplainOptions) {
				if len(o.Scopes) != 2 || o.Scopes[0].String() != "repository:a/b:pull,push" || o.Scopes[1].String() != "registry:catalog:*" {
					t.Errorf("scopes %v", o.Scopes)
				}
				if o.Service != "other" || o.IP != netip.MustParseAddr("10.1.2.3") || !o.At.Equal(time.Date(2027, 1, 1, 10, 0, 0, 0, time.UTC)) || o.Output != "json" {
					t.Errorf("got %+v", o)
				}
			}},
		{Name: "both", Args: []string{"waldi", "pull", "x/y", "--scope", "repository:a/b:pull"}, Check: func(t *testing.T, o *ExplainOptions) {
			if len(o.Scopes) != 2 {
				t.Errorf("scopes %v", o.Scopes)
			}
		}},
		{Name: "user only", Args: []string{"waldi"}, WantErr: "give ACTION and REPOSITORY after USER, or --scope"},
		{Name: "two args", Args: []string{"waldi", "pull"}, WantErr: "want USER ACTION REPOSITORY or USER --scope SCOPE, got 2"},
		{Name: "bad action", Args: []string{"waldi", "write", "x"}, WantErr: `unknown action "write"`},
		{Name: "bad repo", Args: []string{"waldi", "pull", "Team/App"}, WantErr: "uppercase"},
		{Name: "bad scope", Args: []string{"waldi", "--scope", "repo:x"}, WantErr: "want type:name:actions"},
		{Name: "bad ip", Args: []string{"waldi", "pull", "x", "--ip", "10.0.0.0/8"}, WantErr: "--ip \"10.0.0.0/8\": want an IP address"},
		{Name: "bad at", Args: []string{"waldi", "pull", "x", "--at", "later"}, WantErr: "--at: invalid time"},
		{Name: "bad output", Args: []string{"waldi", "pull", "x", "-o", "yaml"}, WantErr: "use text, json"},
	})
}

func TestNewCmdImportDockerAuth(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("acl:\n  - match: {team: dev}\n    actions: [pull]\n  - match: {account: \"/[/\"}\n    actions: [pull]\n  - match: {name: x}\n"), 0o644)
	cmdtest.TestFlags(t, NewCmdImportDockerAuth, []cmdtest.FlagCase[ImportDockerAuthOptions]{
		{Name: "parse", Args: []string{"../testdata/auth_config.yml", "--update", "--dry-run"}, Check: func(t *testing.T, o *ImportDockerAuthOptions) {
			if !o.Update || !o.DryRun || len(o.Config.Users) != 2 || len(o.Config.Rules) != 6 || !o.Config.HasACL {
				t.Errorf("got %+v", o.Config)
			}
		}},
		{Name: "acl problems", Args: []string{bad}, WantCode: cmdutil.ExitError,
			WantErr: "the acl cannot be carried over, nothing imported: acl entry 1 (seq 10): match.team is not supported by regctl; dropping it would widen the rule; acl entry 2 (seq 20): rule seq 20: match.account: invalid regular expression"},
		{Name: "costly regex", Args: []string{"-"}, Stdin: "acl:\n  - match: {name: \"/(x?){1000}/\"}\n    actions: [pull]\n", WantCode: cmdutil.ExitError,
			WantErr: "the acl cannot be carried over, nothing imported: acl entry 1 (seq 10): rule seq 10: match.name: regular expression /.*(?:(x?){1000}).*/ (4008 instructions) may take"},
		{Name: "mixed actions", Args: []string{"-"}, Stdin: "acl:\n  - match: {name: x}\n    actions: [\"*\", push]\n  - match: {name: y}\n    actions: [\"*\"]\n",
			Check: func(t *testing.T, o *ImportDockerAuthOptions) {
				want := []string{"Note: acl entry 1 (seq 10): actions *,push allow only push (and a requested *), not every action: only actions that are exactly * allow everything, as in docker_auth"}
				if !slices.Equal(o.Config.Checks, want) || len(o.Config.Notes) != 0 || len(o.Config.Rules) != 2 {
					t.Errorf("got %+v", o.Config)
				}
			}},
		{Name: "not a mapping", Args: []string{"-"}, Stdin: "- a\n- b\n", WantCode: cmdutil.ExitError, WantErr: "not a docker_auth config"},
		{Name: "bad yaml", Args: []string{"-"}, Stdin: "users: [\n", WantCode: cmdutil.ExitError, WantErr: "yaml:"},
	})
}
