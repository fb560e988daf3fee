package user

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
)

// The tests in this file check flag and argument parsing only: each
// command gets a runF that captures its options, as in cli/cli.

func TestNewCmdUserAdd(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("file-password\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash := cmdtest.TestHash
	cmdtest.TestFlags(t, NewCmdAdd, []cmdtest.FlagCase[AddOptions]{
		{Name: "stdin", Args: []string{"waldi", "--password-stdin"}, Stdin: "secret-password\n",
			Check: func(t *testing.T, o *AddOptions) {
				if o.Username != "waldi" || string(o.Password) != "secret-password" || o.BcryptCost != 12 || o.Expires != nil || o.DryRun {
					t.Errorf("got %+v", o)
				}
			}},
		{Name: "file, labels, expiry, cost, dry-run", Args: []string{"ci-bot", "--password-file", pwFile,
			"--label", "full-access=test/*", "--label", "full-access=socke*", "--label", "team=a", "--expires", "90d", "--bcrypt-cost", "10", "--dry-run"},
			Check: func(t *testing.T, o *AddOptions) {
				if string(o.Password) != "file-password" {
					t.Errorf("password %q", o.Password)
				}
				if !slices.Equal(o.Labels["full-access"], []string{"test/*", "socke*"}) || len(o.Labels) != 2 {
					t.Errorf("labels %v", o.Labels)
				}
				if o.Expires == nil || !o.Expires.Equal(cmdtest.FixedNow.Add(90*24*time.Hour)) {
					t.Errorf("expires %v", o.Expires)
				}
				if o.BcryptCost != 10 || !o.DryRun {
					t.Errorf("got %+v", o)
				}
			}},
		{Name: "tty prompt", Args: []string{"waldi"}, Setup: func(e *cmdtest.Env) {
			e.IOS.SetStdinTTY(true)
			e.IOS.SetReadPassword(func() ([]byte, error) { return []byte("typed-password"), nil })
		}, Check: func(t *testing.T, o *AddOptions) {
			if string(o.Password) != "typed-password" {
				t.Errorf("password %q", o.Password)
			}
		}},
		{Name: "tty prompt mismatch", Args: []string{"waldi"}, WantCode: cmdutil.ExitError, WantErr: "passwords do not match", Setup: func(e *cmdtest.Env) {
			e.IOS.SetStdinTTY(true)
			n := 0
			e.IOS.SetReadPassword(func() ([]byte, error) { n++; return []byte(strings.Repeat("x", 8+n)), nil })
		}},
		{Name: "existing hash", Args: []string{"legacy", "--password-hash", hash},
			Check: func(t *testing.T, o *AddOptions) {
				if o.PasswordHash != hash || o.Password != nil {
					t.Errorf("got %+v", o)
				}
			}},
		{Name: "hash from stdin, htpasswd format", Args: []string{"legacy", "--password-hash", "-"}, Stdin: "legacy:" + hash + "\n\n",
			Check: func(t *testing.T, o *AddOptions) {
				if o.PasswordHash != hash {
					t.Errorf("got %+v", o)
				}
			}},
		{Name: "no password source", Args: []string{"waldi"}, WantErr: "no password given"},
		{Name: "two sources", Args: []string{"waldi", "--password-stdin", "--password-hash", hash}, WantErr: "mutually exclusive"},
		{Name: "hash not bcrypt", Args: []string{"waldi", "--password-hash", "$1$abc$def"}, WantErr: "not a bcrypt hash"},
		{Name: "hash truncated by the shell", Args: []string{"waldi", "--password-hash", "$2y$10$"}, WantErr: "quote it in single quotes"},
		{Name: "hash bad cost", Args: []string{"waldi", "--password-hash", "$2y$99$" + strings.Repeat("a", 53)}, WantErr: "not a valid bcrypt hash"},
		{Name: "short password", Args: []string{"waldi", "--password-stdin"}, Stdin: "short\n", WantErr: "too short", WantCode: cmdutil.ExitError},
		{Name: "empty stdin", Args: []string{"waldi", "--password-stdin"}, WantErr: "empty password", WantCode: cmdutil.ExitError},
		{Name: "long password", Args: []string{"waldi", "--password-stdin"}, Stdin: strings.Repeat("p", 73) + "\n", WantErr: "at most 72 bytes", WantCode: cmdutil.ExitError},
		{Name: "missing file", Args: []string{"waldi", "--password-file", "/nonexistent/pw"}, WantErr: "read password file", WantCode: cmdutil.ExitError},
		{Name: "low cost", Args: []string{"waldi", "--password-stdin", "--bcrypt-cost", "9"}, Stdin: "secret-password\n", WantErr: "--bcrypt-cost 9: use 10 to 31"},
		{Name: "bad name", Args: []string{"wal:di", "--password-stdin"}, Stdin: "secret-password\n", WantErr: "invalid username"},
		{Name: "bad label", Args: []string{"waldi", "--password-stdin", "--label", "nokey"}, Stdin: "secret-password\n", WantErr: `want KEY=VALUE`},
		{Name: "bad label key", Args: []string{"waldi", "--password-stdin", "--label", "a.b=c"}, Stdin: "secret-password\n", WantErr: "invalid label key"},
		{Name: "past expiry", Args: []string{"waldi", "--password-stdin", "--expires", "2020-01-01"}, Stdin: "secret-password\n", WantErr: "lies in the past"},
		{Name: "bad expiry", Args: []string{"waldi", "--password-stdin", "--expires", "soon"}, Stdin: "secret-password\n", WantErr: "invalid time"},
		{Name: "no name", Args: []string{"--password-stdin"}, WantErr: "accepts 1 arg"},
		{Name: "password in argv", Args: []string{"waldi", "--password", "x"}, WantErr: "unknown flag: --password"},
	})
}

func TestNewCmdUserList(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdList, []cmdtest.FlagCase[ListOptions]{
		{Name: "default", Check: func(t *testing.T, o *ListOptions) {
			if o.Output != "table" || o.Expiring != 0 {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "expiring json", Args: []string{"--expiring", "7d", "-o", "json"}, Check: func(t *testing.T, o *ListOptions) {
			if o.Output != "json" || o.Expiring != 7*24*time.Hour {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "yaml", Args: []string{"--output", "yaml"}, Check: func(t *testing.T, o *ListOptions) {
			if o.Output != "yaml" {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "bad output", Args: []string{"-o", "xml"}, WantErr: `--output "xml": use table, json, yaml`},
		{Name: "bad expiring", Args: []string{"--expiring", "soon"}, WantErr: "--expiring \"soon\": want a positive duration"},
		{Name: "negative expiring", Args: []string{"--expiring", "-1h"}, WantErr: "want a positive duration"},
		{Name: "args", Args: []string{"waldi"}, WantErr: "unknown command"},
	})
}

func TestNewCmdUserShow(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdShow, []cmdtest.FlagCase[ShowOptions]{
		{Name: "ok", Args: []string{"waldi", "-o", "yaml"}, Check: func(t *testing.T, o *ShowOptions) {
			if o.Username != "waldi" || o.Output != "yaml" {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "no name", WantErr: "accepts 1 arg"},
		{Name: "bad output", Args: []string{"waldi", "-o", "text"}, WantErr: "--output"},
	})
}

func TestNewCmdUserPasswd(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdPasswd, []cmdtest.FlagCase[PasswdOptions]{
		{Name: "stdin", Args: []string{"waldi", "--password-stdin", "--dry-run"}, Stdin: "new-password\n", Check: func(t *testing.T, o *PasswdOptions) {
			if o.Username != "waldi" || string(o.Password) != "new-password" || !o.DryRun || o.BcryptCost != 12 {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "no source", Args: []string{"waldi"}, WantErr: "no password given"},
		{Name: "cost too high", Args: []string{"waldi", "--password-stdin", "--bcrypt-cost", "32"}, Stdin: "new-password\n", WantErr: "use 10 to 31"},
	})
}

func TestNewCmdUserExpire(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdExpire, []cmdtest.FlagCase[ExpireOptions]{
		{Name: "date", Args: []string{"waldi", "2027-01-01"}, Check: func(t *testing.T, o *ExpireOptions) {
			if o.Expires == nil || !o.Expires.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("got %v", o.Expires)
			}
		}},
		{Name: "duration", Args: []string{"waldi", "12h"}, Check: func(t *testing.T, o *ExpireOptions) {
			if o.Expires == nil || !o.Expires.Equal(cmdtest.FixedNow.Add(12*time.Hour)) {
				t.Errorf("got %v", o.Expires)
			}
		}},
		{Name: "never", Args: []string{"waldi", "never", "--dry-run"}, Check: func(t *testing.T, o *ExpireOptions) {
			if o.Expires != nil || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "past", Args: []string{"waldi", "2026-01-01"}, WantErr: "lies in the past: to block the account now, use regctl user disable waldi"},
		{Name: "garbage", Args: []string{"waldi", "tomorrow"}, WantErr: "or never"},
		{Name: "missing when", Args: []string{"waldi"}, WantErr: "accepts 2 arg"},
	})
}

func TestNewCmdUserStateAndDelete(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdDisable, []cmdtest.FlagCase[StateOptions]{
		{Name: "disable", Args: []string{"waldi"}, Check: func(t *testing.T, o *StateOptions) {
			if !o.Disable || o.Username != "waldi" {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "bad name", Args: []string{"-x"}, WantErr: "unknown shorthand flag"},
	})
	cmdtest.TestFlags(t, NewCmdEnable, []cmdtest.FlagCase[StateOptions]{
		{Name: "enable", Args: []string{"waldi", "--dry-run"}, Check: func(t *testing.T, o *StateOptions) {
			if o.Disable || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
	})
	cmdtest.TestFlags(t, NewCmdDelete, []cmdtest.FlagCase[DeleteOptions]{
		{Name: "yes", Args: []string{"waldi", "--yes"}, Check: func(t *testing.T, o *DeleteOptions) {
			if !o.Yes {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "tty asks later", Args: []string{"waldi"}, Setup: func(e *cmdtest.Env) { e.IOS.SetStdinTTY(true) }},
		{Name: "dry-run needs no confirmation", Args: []string{"waldi", "--dry-run"}},
		{Name: "no tty no yes", Args: []string{"waldi"}, WantErr: "refusing to delete user waldi without confirmation: pass --yes"},
	})
}

func TestNewCmdUserLabel(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdLabelSet, []cmdtest.FlagCase[LabelOptions]{
		{Name: "set", Args: []string{"waldi", "full-access=test/*", "full-access=socke*", "team=a", "--add"}, Check: func(t *testing.T, o *LabelOptions) {
			if !slices.Equal(o.Keys, []string{"full-access", "team"}) || len(o.Labels["full-access"]) != 2 || !o.Add || o.Unset {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "no pairs", Args: []string{"waldi"}, WantErr: "requires at least 2 arg"},
		{Name: "no value", Args: []string{"waldi", "full-access"}, WantErr: "want KEY=VALUE"},
		{Name: "empty value", Args: []string{"waldi", "full-access="}, WantErr: "must be 1-255 characters"},
	})
	cmdtest.TestFlags(t, NewCmdLabelUnset, []cmdtest.FlagCase[LabelOptions]{
		{Name: "unset", Args: []string{"waldi", "full-access=socke*", "team", "team=a"}, Check: func(t *testing.T, o *LabelOptions) {
			if !o.Unset || !slices.Equal(o.Labels["full-access"], []string{"socke*"}) || len(o.Labels["team"]) != 0 {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "empty value", Args: []string{"waldi", "team="}, WantErr: "want KEY or KEY=VALUE"},
	})
}

func TestNewCmdUserGrantRevoke(t *testing.T) {
	cmdtest.TestFlags(t, NewCmdGrant, []cmdtest.FlagCase[GrantOptions]{
		{Name: "grant", Args: []string{"waldi", "team/*", "--actions", "pull, push,pull", "--expires", "30d"}, Check: func(t *testing.T, o *GrantOptions) {
			if !slices.Equal(o.Grant.Actions, []string{"pull", "push"}) || o.Grant.Pattern != "team/*" ||
				o.Grant.ExpiresAt == nil || !o.Grant.ExpiresAt.Equal(cmdtest.FixedNow.Add(30*24*time.Hour)) {
				t.Errorf("got %+v", o.Grant)
			}
		}},
		{Name: "no actions", Args: []string{"waldi", "team/*"}, WantErr: "--actions is required"},
		{Name: "bad action", Args: []string{"waldi", "team/*", "--actions", "write"}, WantErr: `unknown action "write"`},
		{Name: "uppercase pattern", Args: []string{"waldi", "Team/*", "--actions", "pull"}, WantErr: "uppercase letters never match"},
		{Name: "leading slash", Args: []string{"waldi", "/team", "--actions", "pull"}, WantErr: "leading '/' never matches"},
		{Name: "bad glob", Args: []string{"waldi", "team/[", "--actions", "pull"}, WantErr: "malformed glob"},
	})
	cmdtest.TestFlags(t, NewCmdRevoke, []cmdtest.FlagCase[RevokeOptions]{
		{Name: "whole", Args: []string{"waldi", "team/*"}, Check: func(t *testing.T, o *RevokeOptions) {
			if o.Actions != nil || o.Pattern != "team/*" {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "some", Args: []string{"waldi", "team/*", "--actions", "push,delete", "--dry-run"}, Check: func(t *testing.T, o *RevokeOptions) {
			if !slices.Equal(o.Actions, []string{"push", "delete"}) || !o.DryRun {
				t.Errorf("got %+v", o)
			}
		}},
		{Name: "empty actions", Args: []string{"waldi", "team/*", "--actions", ""}, WantErr: "--actions is required"},
	})
}
