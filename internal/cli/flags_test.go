package cli

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// The tests in this file check flag and argument parsing only: each
// command gets a runF that captures its options, as in cli/cli.

type flagCase[O any] struct {
	name  string
	args  []string
	stdin string
	setup func(e *testEnv)
	// wantErr is a substring of the error; empty means success.
	wantErr  string
	wantCode int
	check    func(t *testing.T, o *O)
}

func testFlags[O any](t *testing.T, build func(*cmdutil.Factory, func(context.Context, *O) error) *cobra.Command, cases []flagCase[O]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.f.Config.Set("service", "registry.example.com")
			if tc.setup != nil {
				tc.setup(e)
			}
			e.in.WriteString(tc.stdin)
			var got *O
			cmd := build(e.f, func(_ context.Context, o *O) error {
				got = o
				return nil
			})
			err := runCmd(cmd, e.ios, tc.args...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got == nil {
					t.Fatal("runF was not called")
				}
				if tc.check != nil {
					tc.check(t, got)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			want := tc.wantCode
			if want == 0 {
				want = cmdutil.ExitUsage
			}
			if code := cmdutil.ExitCode(err); code != want {
				t.Errorf("exit code %d, want %d (error %v)", code, want, err)
			}
			if got != nil {
				t.Error("runF was called despite the error")
			}
		})
	}
}

func TestNewCmdUserAdd(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("file-password\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash := passwordHash(t)
	testFlags(t, NewCmdUserAdd, []flagCase[UserAddOptions]{
		{name: "stdin", args: []string{"waldi", "--password-stdin"}, stdin: "secret-password\n",
			check: func(t *testing.T, o *UserAddOptions) {
				if o.Username != "waldi" || string(o.Password) != "secret-password" || o.BcryptCost != 12 || o.Expires != nil || o.DryRun {
					t.Errorf("got %+v", o)
				}
			}},
		{name: "file, labels, expiry, cost, dry-run", args: []string{"ci-bot", "--password-file", pwFile,
			"--label", "full-access=test/*", "--label", "full-access=socke*", "--label", "team=a", "--expires", "90d", "--bcrypt-cost", "10", "--dry-run"},
			check: func(t *testing.T, o *UserAddOptions) {
				if string(o.Password) != "file-password" {
					t.Errorf("password %q", o.Password)
				}
				if !slices.Equal(o.Labels["full-access"], []string{"test/*", "socke*"}) || len(o.Labels) != 2 {
					t.Errorf("labels %v", o.Labels)
				}
				if o.Expires == nil || !o.Expires.Equal(fixedNow.Add(90*24*time.Hour)) {
					t.Errorf("expires %v", o.Expires)
				}
				if o.BcryptCost != 10 || !o.DryRun {
					t.Errorf("got %+v", o)
				}
			}},
		{name: "tty prompt", args: []string{"waldi"}, setup: func(e *testEnv) {
			e.ios.SetStdinTTY(true)
			e.ios.SetReadPassword(func() ([]byte, error) { return []byte("typed-password"), nil })
		}, check: func(t *testing.T, o *UserAddOptions) {
			if string(o.Password) != "typed-password" {
				t.Errorf("password %q", o.Password)
			}
		}},
		{name: "tty prompt mismatch", args: []string{"waldi"}, wantCode: cmdutil.ExitError, wantErr: "passwords do not match", setup: func(e *testEnv) {
			e.ios.SetStdinTTY(true)
			n := 0
			e.ios.SetReadPassword(func() ([]byte, error) { n++; return []byte(strings.Repeat("x", 8+n)), nil })
		}},
		{name: "existing hash", args: []string{"legacy", "--password-hash", hash},
			check: func(t *testing.T, o *UserAddOptions) {
				if o.PasswordHash != hash || o.Password != nil {
					t.Errorf("got %+v", o)
				}
			}},
		{name: "hash from stdin, htpasswd format", args: []string{"legacy", "--password-hash", "-"}, stdin: "legacy:" + hash + "\n\n",
			check: func(t *testing.T, o *UserAddOptions) {
				if o.PasswordHash != hash {
					t.Errorf("got %+v", o)
				}
			}},
		{name: "no password source", args: []string{"waldi"}, wantErr: "no password given"},
		{name: "two sources", args: []string{"waldi", "--password-stdin", "--password-hash", hash}, wantErr: "mutually exclusive"},
		{name: "hash not bcrypt", args: []string{"waldi", "--password-hash", "$1$abc$def"}, wantErr: "not a bcrypt hash"},
		{name: "hash truncated by the shell", args: []string{"waldi", "--password-hash", "$2y$10$"}, wantErr: "quote it in single quotes"},
		{name: "hash bad cost", args: []string{"waldi", "--password-hash", "$2y$99$" + strings.Repeat("a", 53)}, wantErr: "not a valid bcrypt hash"},
		{name: "short password", args: []string{"waldi", "--password-stdin"}, stdin: "short\n", wantErr: "too short", wantCode: cmdutil.ExitError},
		{name: "empty stdin", args: []string{"waldi", "--password-stdin"}, wantErr: "empty password", wantCode: cmdutil.ExitError},
		{name: "long password", args: []string{"waldi", "--password-stdin"}, stdin: strings.Repeat("p", 73) + "\n", wantErr: "at most 72 bytes", wantCode: cmdutil.ExitError},
		{name: "missing file", args: []string{"waldi", "--password-file", "/nonexistent/pw"}, wantErr: "read password file", wantCode: cmdutil.ExitError},
		{name: "low cost", args: []string{"waldi", "--password-stdin", "--bcrypt-cost", "9"}, stdin: "secret-password\n", wantErr: "--bcrypt-cost 9: use 10 to 31"},
		{name: "bad name", args: []string{"wal:di", "--password-stdin"}, stdin: "secret-password\n", wantErr: "invalid username"},
		{name: "bad label", args: []string{"waldi", "--password-stdin", "--label", "nokey"}, stdin: "secret-password\n", wantErr: `want KEY=VALUE`},
		{name: "bad label key", args: []string{"waldi", "--password-stdin", "--label", "a.b=c"}, stdin: "secret-password\n", wantErr: "invalid label key"},
		{name: "past expiry", args: []string{"waldi", "--password-stdin", "--expires", "2020-01-01"}, stdin: "secret-password\n", wantErr: "lies in the past"},
		{name: "bad expiry", args: []string{"waldi", "--password-stdin", "--expires", "soon"}, stdin: "secret-password\n", wantErr: "invalid time"},
		{name: "no name", args: []string{"--password-stdin"}, wantErr: "accepts 1 arg"},
		{name: "password in argv", args: []string{"waldi", "--password", "x"}, wantErr: "unknown flag: --password"},
	})
}

func TestNewCmdUserList(t *testing.T) {
	testFlags(t, NewCmdUserList, []flagCase[UserListOptions]{
		{name: "default", check: func(t *testing.T, o *UserListOptions) {
			if o.Output != "table" || o.Expiring != 0 {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "expiring json", args: []string{"--expiring", "7d", "-o", "json"}, check: func(t *testing.T, o *UserListOptions) {
			if o.Output != "json" || o.Expiring != 7*24*time.Hour {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "yaml", args: []string{"--output", "yaml"}, check: func(t *testing.T, o *UserListOptions) {
			if o.Output != "yaml" {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "bad output", args: []string{"-o", "xml"}, wantErr: `--output "xml": use table, json, yaml`},
		{name: "bad expiring", args: []string{"--expiring", "soon"}, wantErr: "--expiring \"soon\": want a positive duration"},
		{name: "negative expiring", args: []string{"--expiring", "-1h"}, wantErr: "want a positive duration"},
		{name: "args", args: []string{"waldi"}, wantErr: "unknown command"},
	})
}

func TestNewCmdUserShow(t *testing.T) {
	testFlags(t, NewCmdUserShow, []flagCase[UserShowOptions]{
		{name: "ok", args: []string{"waldi", "-o", "yaml"}, check: func(t *testing.T, o *UserShowOptions) {
			if o.Username != "waldi" || o.Output != "yaml" {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "no name", wantErr: "accepts 1 arg"},
		{name: "bad output", args: []string{"waldi", "-o", "text"}, wantErr: "--output"},
	})
}

func TestNewCmdUserPasswd(t *testing.T) {
	testFlags(t, NewCmdUserPasswd, []flagCase[UserPasswdOptions]{
		{name: "stdin", args: []string{"waldi", "--password-stdin", "--dry-run"}, stdin: "new-password\n", check: func(t *testing.T, o *UserPasswdOptions) {
			if o.Username != "waldi" || string(o.Password) != "new-password" || !o.DryRun || o.BcryptCost != 12 {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "no source", args: []string{"waldi"}, wantErr: "no password given"},
		{name: "cost too high", args: []string{"waldi", "--password-stdin", "--bcrypt-cost", "32"}, stdin: "new-password\n", wantErr: "use 10 to 31"},
	})
}

func TestNewCmdUserExpire(t *testing.T) {
	testFlags(t, NewCmdUserExpire, []flagCase[UserExpireOptions]{
		{name: "date", args: []string{"waldi", "2027-01-01"}, check: func(t *testing.T, o *UserExpireOptions) {
			if o.Expires == nil || !o.Expires.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("got %v", o.Expires)
			}
		}},
		{name: "duration", args: []string{"waldi", "12h"}, check: func(t *testing.T, o *UserExpireOptions) {
			if o.Expires == nil || !o.Expires.Equal(fixedNow.Add(12*time.Hour)) {
				t.Errorf("got %v", o.Expires)
			}
		}},
		{name: "never", args: []string{"waldi", "never", "--dry-run"}, check: func(t *testing.T, o *UserExpireOptions) {
			if o.Expires != nil || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "past", args: []string{"waldi", "2026-01-01"}, wantErr: "lies in the past: to block the account now, use regctl user disable waldi"},
		{name: "garbage", args: []string{"waldi", "tomorrow"}, wantErr: "or never"},
		{name: "missing when", args: []string{"waldi"}, wantErr: "accepts 2 arg"},
	})
}

func TestNewCmdUserStateAndDelete(t *testing.T) {
	testFlags(t, NewCmdUserDisable, []flagCase[UserStateOptions]{
		{name: "disable", args: []string{"waldi"}, check: func(t *testing.T, o *UserStateOptions) {
			if !o.Disable || o.Username != "waldi" {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "bad name", args: []string{"-x"}, wantErr: "unknown shorthand flag"},
	})
	testFlags(t, NewCmdUserEnable, []flagCase[UserStateOptions]{
		{name: "enable", args: []string{"waldi", "--dry-run"}, check: func(t *testing.T, o *UserStateOptions) {
			if o.Disable || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
	})
	testFlags(t, NewCmdUserDelete, []flagCase[UserDeleteOptions]{
		{name: "yes", args: []string{"waldi", "--yes"}, check: func(t *testing.T, o *UserDeleteOptions) {
			if !o.Yes {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "tty asks later", args: []string{"waldi"}, setup: func(e *testEnv) { e.ios.SetStdinTTY(true) }},
		{name: "dry-run needs no confirmation", args: []string{"waldi", "--dry-run"}},
		{name: "no tty no yes", args: []string{"waldi"}, wantErr: "refusing to delete user waldi without confirmation: pass --yes"},
	})
}

func TestNewCmdUserLabel(t *testing.T) {
	testFlags(t, NewCmdUserLabelSet, []flagCase[UserLabelOptions]{
		{name: "set", args: []string{"waldi", "full-access=test/*", "full-access=socke*", "team=a", "--add"}, check: func(t *testing.T, o *UserLabelOptions) {
			if !slices.Equal(o.Keys, []string{"full-access", "team"}) || len(o.Labels["full-access"]) != 2 || !o.Add || o.Unset {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "no pairs", args: []string{"waldi"}, wantErr: "requires at least 2 arg"},
		{name: "no value", args: []string{"waldi", "full-access"}, wantErr: "want KEY=VALUE"},
		{name: "empty value", args: []string{"waldi", "full-access="}, wantErr: "must be 1-255 characters"},
	})
	testFlags(t, NewCmdUserLabelUnset, []flagCase[UserLabelOptions]{
		{name: "unset", args: []string{"waldi", "full-access=socke*", "team", "team=a"}, check: func(t *testing.T, o *UserLabelOptions) {
			if !o.Unset || !slices.Equal(o.Labels["full-access"], []string{"socke*"}) || len(o.Labels["team"]) != 0 {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "empty value", args: []string{"waldi", "team="}, wantErr: "want KEY or KEY=VALUE"},
	})
}

func TestNewCmdUserGrantRevoke(t *testing.T) {
	testFlags(t, NewCmdUserGrant, []flagCase[UserGrantOptions]{
		{name: "grant", args: []string{"waldi", "team/*", "--actions", "pull, push,pull", "--expires", "30d"}, check: func(t *testing.T, o *UserGrantOptions) {
			if !slices.Equal(o.Grant.Actions, []string{"pull", "push"}) || o.Grant.Pattern != "team/*" ||
				o.Grant.ExpiresAt == nil || !o.Grant.ExpiresAt.Equal(fixedNow.Add(30*24*time.Hour)) {
				t.Errorf("got %+v", o.Grant)
			}
		}},
		{name: "no actions", args: []string{"waldi", "team/*"}, wantErr: "--actions is required"},
		{name: "bad action", args: []string{"waldi", "team/*", "--actions", "write"}, wantErr: `unknown action "write"`},
		{name: "uppercase pattern", args: []string{"waldi", "Team/*", "--actions", "pull"}, wantErr: "uppercase letters never match"},
		{name: "leading slash", args: []string{"waldi", "/team", "--actions", "pull"}, wantErr: "leading '/' never matches"},
		{name: "bad glob", args: []string{"waldi", "team/[", "--actions", "pull"}, wantErr: "malformed glob"},
	})
	testFlags(t, NewCmdUserRevoke, []flagCase[UserRevokeOptions]{
		{name: "whole", args: []string{"waldi", "team/*"}, check: func(t *testing.T, o *UserRevokeOptions) {
			if o.Actions != nil || o.Pattern != "team/*" {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "some", args: []string{"waldi", "team/*", "--actions", "push,delete", "--dry-run"}, check: func(t *testing.T, o *UserRevokeOptions) {
			if !slices.Equal(o.Actions, []string{"push", "delete"}) || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "empty actions", args: []string{"waldi", "team/*", "--actions", ""}, wantErr: "--actions is required"},
	})
}

func TestNewCmdACLAdd(t *testing.T) {
	testFlags(t, NewCmdACLAdd, []flagCase[ACLAddOptions]{
		{name: "full", args: []string{"--seq", "30", "--account", "ci-bot", "--name", "ci/*", "--type", "repository",
			"--service", "registry.example.com", "--ip", "10.0.0.0/8", "--label", "team=ci", "--label", "env=/prod|dev/",
			"--actions", "pull,push", "--comment", "CI", "--expires", "2027-01-01"},
			check: func(t *testing.T, o *ACLAddOptions) {
				r := o.Rule
				if o.AutoSeq || r.Seq != 30 || *r.Match.Account != "ci-bot" || *r.Match.Name != "ci/*" || *r.Match.Type != "repository" ||
					*r.Match.Service != "registry.example.com" || *r.Match.IP != "10.0.0.0/8" || r.Match.Labels["env"] != "/prod|dev/" ||
					!slices.Equal(r.Actions, []string{"pull", "push"}) || r.Comment != "CI" || r.ExpiresAt == nil {
					t.Errorf("got %+v", o)
				}
			}},
		{name: "deny, auto seq, empty account", args: []string{"--account", "", "--deny"}, check: func(t *testing.T, o *ACLAddOptions) {
			r := o.Rule
			if !o.AutoSeq || r.Actions == nil || len(r.Actions) != 0 || r.Match.Account == nil || *r.Match.Account != "" || r.Match.Name != nil {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "deny and actions", args: []string{"--deny", "--actions", "pull"}, wantErr: "mutually exclusive"},
		{name: "no actions", args: []string{"--name", "x"}, wantErr: "--actions is required (pull, push, delete or *, comma separated), or --deny"},
		{name: "bad regex", args: []string{"--name", "/[/", "--actions", "pull"}, wantErr: "rule: match.name: invalid regular expression"},
		{name: "bad ip", args: []string{"--seq", "5", "--ip", "10.0.0.0/33", "--actions", "pull"}, wantErr: "rule seq 5: match.ip"},
		{name: "costly regex", args: []string{"--name", "/(x?){1000}/", "--actions", "pull"},
			wantErr: "rule: match.name: regular expression /(x?){1000}/ (4004 instructions) may take 898212 steps to match a 255-character value, more than the 16384"},
		{name: "costly account regex", args: []string{"--seq", "7", "--account", "/(?i)[a-z]{1,1000}q/", "--actions", "pull"},
			wantErr: "rule seq 7: match.account: regular expression /(?i)[a-z]{1,1000}q/ (2004 instructions) may take"},
		{name: "unknown variable", args: []string{"--name", "${user}/*", "--actions", "pull"}, wantErr: "match.name"},
		{name: "bad label", args: []string{"--label", "team", "--actions", "pull"}, wantErr: "want KEY=PATTERN"},
		{name: "duplicate label", args: []string{"--label", "a=b", "--label", "a=c", "--actions", "pull"}, wantErr: "--label a given twice"},
		{name: "negative seq", args: []string{"--seq", "-1", "--actions", "pull"}, wantErr: "use a number >= 0"},
		{name: "seq not a number", args: []string{"--seq", "x", "--actions", "pull"}, wantErr: "invalid argument"},
		{name: "past expiry", args: []string{"--actions", "pull", "--expires", "2020-01-01"}, wantErr: "lies in the past"},
	})
}

func TestNewCmdACLOther(t *testing.T) {
	testFlags(t, NewCmdACLRemove, []flagCase[ACLRemoveOptions]{
		{name: "ok", args: []string{"30", "--dry-run"}, check: func(t *testing.T, o *ACLRemoveOptions) {
			if o.Seq != 30 || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "not a number", args: []string{"ten"}, wantErr: `seq "ten": want a number`},
		{name: "missing", wantErr: "accepts 1 arg"},
	})
	testFlags(t, NewCmdACLList, []flagCase[ACLListOptions]{
		{name: "json", args: []string{"-o", "json"}},
		{name: "bad", args: []string{"-o", "csv"}, wantErr: "--output"},
	})
	testFlags(t, NewCmdACLExport, []flagCase[ACLExportOptions]{
		{name: "default yaml", check: func(t *testing.T, o *ACLExportOptions) {
			if o.Output != "yaml" {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "table is not an export format", args: []string{"-o", "table"}, wantErr: "use yaml, json"},
	})
	testFlags(t, NewCmdACLDefaults, []flagCase[ACLDefaultsOptions]{
		{name: "force", args: []string{"--force", "--dry-run"}, check: func(t *testing.T, o *ACLDefaultsOptions) {
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
	testFlags(t, NewCmdACLImport, []flagCase[ACLImportOptions]{
		{name: "file", args: []string{good}, check: func(t *testing.T, o *ACLImportOptions) {
			if len(o.Rules) != 1 || o.Rules[0].Seq != 10 {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "stdin", args: []string{"-", "--dry-run"}, stdin: `[{"seq": 5, "match": {"account": "a"}, "actions": []}]`, check: func(t *testing.T, o *ACLImportOptions) {
			if len(o.Rules) != 1 || o.Rules[0].Actions == nil || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "unknown key", args: []string{typo}, wantErr: "field acount not found", wantCode: cmdutil.ExitError},
		{name: "duplicate seq", args: []string{dup}, wantErr: "duplicate seq", wantCode: cmdutil.ExitError},
		{name: "costly regexes", args: []string{costly}, wantCode: cmdutil.ExitError,
			wantErr: "rule seq 1: match.name: regular expression /(x?){1000}/ (4004 instructions) may take 898212 steps to match a 255-character value, " +
				"more than the 16384 that deciding one scope of a request (of up to 64) may take; shorten it, give it a literal prefix, or avoid counted repetition {n,m} of optional or large groups; " +
				"rule seq 2: match.account: regular expression /(x?){1000}/ (4004 instructions) may take 898212 steps"},
		{name: "missing file", args: []string{filepath.Join(dir, "nope")}, wantErr: "no such file", wantCode: cmdutil.ExitError},
		{name: "empty", args: []string{"-"}, wantErr: "no rules found", wantCode: cmdutil.ExitError},
	})
}

func TestNewCmdACLExplain(t *testing.T) {
	testFlags(t, NewCmdACLExplain, []flagCase[ACLExplainOptions]{
		{name: "positional", args: []string{"waldi", "push,pull", "team/app"}, check: func(t *testing.T, o *ACLExplainOptions) {
			if len(o.Scopes) != 1 || o.Scopes[0].String() != "repository:team/app:pull,push" {
				t.Errorf("scopes %v", o.Scopes)
			}
			if o.Service != "registry.example.com" || o.IP.IsValid() || !o.At.IsZero() || o.Output != "text" {
				t.Errorf("got %+v", o)
			}
		}},
		{name: "scopes merge", args: []string{"waldi", "--scope", "repository:a/b:pull", "--scope", "repository:a/b:push registry:catalog:*",
			"--service", "other", "--ip", "::ffff:10.1.2.3", "--at", "2027-01-01T10:00:00Z", "-o", "json"},
			check: func(t *testing.T, o *ACLExplainOptions) {
				if len(o.Scopes) != 2 || o.Scopes[0].String() != "repository:a/b:pull,push" || o.Scopes[1].String() != "registry:catalog:*" {
					t.Errorf("scopes %v", o.Scopes)
				}
				if o.Service != "other" || o.IP != netip.MustParseAddr("10.1.2.3") || !o.At.Equal(time.Date(2027, 1, 1, 10, 0, 0, 0, time.UTC)) || o.Output != "json" {
					t.Errorf("got %+v", o)
				}
			}},
		{name: "both", args: []string{"waldi", "pull", "x/y", "--scope", "repository:a/b:pull"}, check: func(t *testing.T, o *ACLExplainOptions) {
			if len(o.Scopes) != 2 {
				t.Errorf("scopes %v", o.Scopes)
			}
		}},
		{name: "user only", args: []string{"waldi"}, wantErr: "give ACTION and REPOSITORY after USER, or --scope"},
		{name: "two args", args: []string{"waldi", "pull"}, wantErr: "want USER ACTION REPOSITORY or USER --scope SCOPE, got 2"},
		{name: "bad action", args: []string{"waldi", "write", "x"}, wantErr: `unknown action "write"`},
		{name: "bad repo", args: []string{"waldi", "pull", "Team/App"}, wantErr: "uppercase"},
		{name: "bad scope", args: []string{"waldi", "--scope", "repo:x"}, wantErr: "want type:name:actions"},
		{name: "bad ip", args: []string{"waldi", "pull", "x", "--ip", "10.0.0.0/8"}, wantErr: "--ip \"10.0.0.0/8\": want an IP address"},
		{name: "bad at", args: []string{"waldi", "pull", "x", "--at", "later"}, wantErr: "--at: invalid time"},
		{name: "bad output", args: []string{"waldi", "pull", "x", "-o", "yaml"}, wantErr: "use text, json"},
	})
}

func TestNewCmdImportDockerAuth(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("acl:\n  - match: {team: dev}\n    actions: [pull]\n  - match: {account: \"/[/\"}\n    actions: [pull]\n  - match: {name: x}\n"), 0o644)
	testFlags(t, NewCmdImportDockerAuth, []flagCase[ImportDockerAuthOptions]{
		{name: "parse", args: []string{"testdata/auth_config.yml", "--update", "--dry-run"}, check: func(t *testing.T, o *ImportDockerAuthOptions) {
			if !o.Update || !o.DryRun || len(o.Config.Users) != 2 || len(o.Config.Rules) != 6 || !o.Config.HasACL {
				t.Errorf("got %+v", o.Config)
			}
		}},
		{name: "acl problems", args: []string{bad}, wantCode: cmdutil.ExitError,
			wantErr: "the acl cannot be carried over, nothing imported: acl entry 1 (seq 10): match.team is not supported by regctl; dropping it would widen the rule; acl entry 2 (seq 20): rule seq 20: match.account: invalid regular expression"},
		{name: "costly regex", args: []string{"-"}, stdin: "acl:\n  - match: {name: \"/(x?){1000}/\"}\n    actions: [pull]\n", wantCode: cmdutil.ExitError,
			wantErr: "the acl cannot be carried over, nothing imported: acl entry 1 (seq 10): rule seq 10: match.name: regular expression /.*(?:(x?){1000}).*/ (4008 instructions) may take"},
		{name: "mixed actions", args: []string{"-"}, stdin: "acl:\n  - match: {name: x}\n    actions: [\"*\", push]\n  - match: {name: y}\n    actions: [\"*\"]\n",
			check: func(t *testing.T, o *ImportDockerAuthOptions) {
				want := []string{"Note: acl entry 1 (seq 10): actions *,push allow only push (and a requested *), not every action: only actions that are exactly * allow everything, as in docker_auth"}
				if !slices.Equal(o.Config.Checks, want) || len(o.Config.Notes) != 0 || len(o.Config.Rules) != 2 {
					t.Errorf("got %+v", o.Config)
				}
			}},
		{name: "not a mapping", args: []string{"-"}, stdin: "- a\n- b\n", wantCode: cmdutil.ExitError, wantErr: "not a docker_auth config"},
		{name: "bad yaml", args: []string{"-"}, stdin: "users: [\n", wantCode: cmdutil.ExitError, wantErr: "yaml:"},
	})
}

// Every admin command has a one-line summary and an example.
func TestEveryCommandHasHelp(t *testing.T) {
	e := newEnv(t, nil)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		if c.Short == "" {
			t.Errorf("%s has no Short", c.CommandPath())
		}
		if c.Example == "" && c.Name() != "regctl" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, c := range NewCmdRoot(e.f).Commands() {
		switch c.Name() {
		case "user", "acl", "import", "completion":
			walk(c)
		}
	}
}
