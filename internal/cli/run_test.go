package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/cli/user"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/token"
)

// The tests in this file run whole commands (flags, run function, output)
// against every real store backend, comparing a transcript of each
// session with a golden file. The outputs must be identical on every
// backend.

// seedUsers creates the users most tests start from, through the CLI.
func seedUsers(t *testing.T, e *testEnv) {
	t.Helper()
	cmdtest.SeedUsers(t, e.Env)
}

func TestUserSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		h := passwordHash(t)
		e.step("", "user", "list")
		e.step("", "user", "add", "waldi", "--password-hash", h, "--label", "full-access=test/*", "--label", "full-access=socke*", "--expires", "90d", "--dry-run")
		e.step("", "user", "list")
		e.step("", "user", "add", "waldi", "--password-hash", h, "--label", "full-access=test/*", "--label", "full-access=socke*", "--expires", "90d")
		e.step("", "user", "add", "waldi", "--password-hash", h)
		e.step("", "user", "add", "waldi", "--password-hash", h, "--dry-run")
		e.step("secret-password\n", "user", "add", "ci-bot", "--password-stdin", "--bcrypt-cost", "10", "--expires", "2026-12-03")
		e.step("", "user", "add", "reader", "--password-hash", h, "--label", "read-only-access=prod/*")
		e.step("", "user", "add", "legacy", "--password-hash", "$2y$05$LO.vzwpWC5LZGqThvEfznu8qhb5SGqvBSWY1J3yZ4AxtMRZ3kN5jC")

		e.step("", "user", "grant", "waldi", "team/*", "--actions", "pull,push")
		e.step("", "user", "grant", "waldi", "team/*", "--actions", "pull,push")
		e.step("", "user", "grant", "waldi", "team/*", "--actions", "pull,push,delete", "--expires", "30d")
		e.step("", "user", "grant", "waldi", "dock/*", "--actions", "*", "--dry-run")
		e.step("", "user", "grant", "waldi", "dock/*", "--actions", "*")
		e.step("", "user", "grant", "nobody", "dock/*", "--actions", "pull")
		e.step("", "user", "revoke", "waldi", "team/*", "--actions", "delete", "--dry-run")
		e.step("", "user", "revoke", "waldi", "team/*", "--actions", "delete")
		e.step("", "user", "revoke", "waldi", "team/*", "--actions", "delete")
		e.step("", "user", "revoke", "waldi", "dock/*", "--actions", "push")
		e.step("", "user", "revoke", "waldi", "team/x")
		e.step("", "user", "revoke", "reader", "team/x")
		e.step("", "user", "revoke", "waldi", "team/*", "--actions", "pull,push")
		e.step("", "user", "grant", "reader", "dock/app", "--actions", "pull", "--expires", "12h")

		e.step("", "user", "label", "set", "reader", "read-only-access=prod/*", "read-only-access=stage/*", "--dry-run")
		e.step("", "user", "label", "set", "reader", "read-only-access=prod/*", "read-only-access=stage/*", "team=ops")
		e.step("", "user", "label", "set", "reader", "team=ops")
		e.step("", "user", "label", "set", "reader", "team=dev", "--add")
		e.step("", "user", "label", "unset", "reader", "read-only-access=stage/*", "env")
		e.step("", "user", "label", "unset", "reader", "team")

		e.step("", "user", "expire", "reader", "2027-06-30")
		e.step("", "user", "expire", "reader", "2027-06-30")
		e.step("", "user", "expire", "reader", "never", "--dry-run")
		e.step("", "user", "expire", "ghost", "never")
		e.step("", "user", "disable", "legacy")
		e.step("", "user", "disable", "legacy")

		e.step("", "user", "list")
		e.step("", "user", "list", "--expiring", "7d")
		e.step("", "user", "list", "--expiring", "1h")
		e.step("", "user", "show", "waldi")
		e.step("", "user", "show", "legacy")
		e.step("", "user", "show", "ghost")

		// Five days later ci-bot has expired and reader's grant too.
		e.setNow(fixedNow.Add(5 * 24 * time.Hour))
		e.step("", "user", "list")
		e.step("", "user", "enable", "legacy")
		e.step("", "user", "enable", "ci-bot")
		e.step("", "user", "expire", "ci-bot", "30d")
		e.setNow(fixedNow)

		e.step("", "user", "delete", "legacy")
		e.step("", "user", "delete", "legacy", "--dry-run")
		e.ios.SetStdinTTY(true)
		e.step("n\n", "user", "delete", "legacy")
		e.step("yes\n", "user", "delete", "legacy")
		e.ios.SetStdinTTY(false)
		e.step("", "user", "delete", "legacy", "--yes")
		e.step("", "user", "list")
		golden(t, "user_session", e.transcript.String())

		// What the commands stored.
		u, err := e.St.GetUser(testCtx(t), "ci-bot")
		if err != nil {
			t.Fatal(err)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("secret-password")); err != nil {
			t.Errorf("ci-bot's hash does not verify: %v", err)
		}
		if cost, _ := bcrypt.Cost([]byte(u.PasswordHash)); cost != 10 {
			t.Errorf("ci-bot's bcrypt cost %d, want 10", cost)
		}
		w, err := e.St.GetUser(testCtx(t), "waldi")
		if err != nil {
			t.Fatal(err)
		}
		if w.PasswordHash != h {
			t.Errorf("waldi's hash was not stored as given")
		}
		if len(w.Grants) != 1 || w.Grants[0].Pattern != "dock/*" {
			t.Errorf("waldi's grants %+v", w.Grants)
		}
	})
}

func TestUserOutputs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		seedUsers(t, e)
		e.must(0, "", "user", "disable", "reader")
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"user_list", []string{"user", "list"}},
			{"user_list.json", []string{"user", "list", "-o", "json"}},
			{"user_list.yaml", []string{"user", "list", "-o", "yaml"}},
			{"user_show", []string{"user", "show", "bob"}},
			{"user_show.json", []string{"user", "show", "bob", "-o", "json"}},
			{"user_show.yaml", []string{"user", "show", "bob", "--output", "yaml"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e.must(0, "", tc.args...)
				if e.errOut.Len() > 0 {
					t.Errorf("stderr: %s", e.errOut)
				}
				golden(t, tc.name, e.out.String())
			})
		}
		// JSON and YAML carry the same data.
		e.must(0, "", "user", "list", "-o", "json")
		var fromJSON []user.View
		if err := json.Unmarshal(e.out.Bytes(), &fromJSON); err != nil {
			t.Fatal(err)
		}
		e.must(0, "", "user", "list", "-o", "yaml")
		var fromYAML []user.View
		if err := decodeYAML(e.out.Bytes(), &fromYAML); err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(fromJSON)
		b, _ := json.Marshal(fromYAML)
		if string(a) != string(b) {
			t.Errorf("JSON and YAML differ:\n%s\n%s", a, b)
		}
		if strings.Contains(string(a), "$2") {
			t.Error("the output contains a password hash")
		}
	})
}

func TestColorOnlyOnTTY(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		seedUsers(t, e)
		e.must(0, "", "user", "disable", "reader")
		e.must(0, "", "user", "list")
		if strings.Contains(e.out.String(), "\x1b[") {
			t.Errorf("colour without a terminal:\n%q", e.out)
		}
		e.ios.SetStdoutTTY(true)
		e.ios.SetColorEnabled(true)
		e.must(0, "", "user", "list")
		out := e.out.String()
		if !strings.Contains(out, "\x1b[32mactive\x1b[0m") || !strings.Contains(out, "\x1b[31mdisabled\x1b[0m") {
			t.Errorf("want green active and red disabled:\n%q", out)
		}
		e.must(1, "", "acl", "explain", "reader", "pull", "prod/app")
		if !strings.Contains(e.out.String(), "\x1b[31mDENIED\x1b[0m") {
			t.Errorf("want a red DENIED:\n%q", e.out)
		}
		e.must(0, "", "user", "list", "-o", "json")
		if strings.Contains(e.out.String(), "\x1b[") {
			t.Error("colour in JSON")
		}
	})
}

func TestACLSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		e.step("", "acl", "list")
		e.step("", "acl", "defaults", "--dry-run")
		e.step("", "acl", "list")
		e.step("", "acl", "defaults")
		e.step("", "acl", "defaults")
		e.step("", "acl", "add", "--seq", "30", "--account", "ci-bot", "--name", "ci/*", "--actions", "pull,push", "--comment", "CI pushes its images")
		e.step("", "acl", "add", "--seq", "5", "--name", "secret/*", "--deny", "--comment", "only explicit grants")
		e.step("", "acl", "add", "--name", "${labels:team}/*", "--label", "team=*", "--ip", "10.0.0.0/8", "--actions", "pull", "--expires", "2027-01-01", "--dry-run")
		e.step("", "acl", "add", "--name", "${labels:team}/*", "--label", "team=*", "--ip", "10.0.0.0/8", "--actions", "pull", "--expires", "2027-01-01")
		e.step("", "acl", "add", "--seq", "30", "--name", "x", "--actions", "pull")
		e.step("", "acl", "add", "--seq", "90", "--deny")
		e.step("", "acl", "list")
		e.step("", "acl", "remove", "90", "--dry-run")
		e.step("", "acl", "remove", "90")
		e.step("", "acl", "remove", "90")
		e.step("", "acl", "export")
		e.step("", "acl", "export", "-o", "json")

		// Round trip: export, import, nothing changes.
		e.must(0, "", "acl", "export")
		exported := e.out.String()
		path := filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(path, []byte(exported), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, e)
		e.must(0, "", "acl", "import", path)
		if !strings.HasPrefix(e.errOut.String(), "No change: the store already holds the 5 rule(s)") {
			t.Errorf("re-import: %s", e.errOut)
		}
		if after := snapshot(t, e); after != before {
			t.Errorf("export | import changed the rules:\n%s\n%s", before, after)
		}
		e.must(0, "", "acl", "export", "-o", "json")
		if err := os.WriteFile(path, e.out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		e.must(0, "", "acl", "import", path)
		if after := snapshot(t, e); after != before {
			t.Errorf("export -o json | import changed the rules:\n%s\n%s", before, after)
		}

		// Edit and import: the diff is reported.
		edited := strings.Replace(exported, "- seq: 30", "- seq: 35", 1)
		edited = strings.Replace(edited, "comment: only explicit grants", "comment: secrets", 1)
		e.step(edited, "acl", "import", "-", "--dry-run")
		e.step(edited, "acl", "import", "-")
		e.step("", "acl", "remove", "10")
		e.step("", "acl", "add", "--seq", "10", "--name", "x/*", "--actions", "pull")
		e.step("", "acl", "defaults")
		e.step("", "acl", "defaults", "--force", "--dry-run")
		e.step("", "acl", "defaults", "--force")
		e.step("", "acl", "list")
		golden(t, "acl_session", e.transcript.String())
	})
}

// TestMixedStarActions: a rule whose actions list "*" among others allows
// what it lists, as in docker_auth; every command that takes rules says
// so.
func TestMixedStarActions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		e.f.Config.Set("service", "registry.example.com")
		e.must(0, "", "user", "add", "alice", "--password-hash", passwordHash(t))
		e.step("", "acl", "add", "--seq", "10", "--name", "mixed/*", "--actions", "pull,*")
		e.step("", "acl", "explain", "alice", "pull,push,delete", "mixed/app")
		e.step("", "acl", "explain", "alice", "push", "mixed/app")
		e.step("- {seq: 10, match: {name: \"mixed/*\"}, actions: [pull, \"*\"]}\n- {seq: 20, match: {name: \"all/*\"}, actions: [\"*\"]}\n", "acl", "import", "-")
		e.step("acl:\n  - match: {name: \"mixed/*\"}\n    actions: [pull, \"*\"]\n  - match: {name: \"all/*\"}\n    actions: [\"*\"]\n",
			"import", "docker-auth", "-", "--dry-run")
		golden(t, "acl_mixed_actions", e.transcript.String())
	})
}

func TestACLOutputs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		e.must(0, "", "acl", "defaults")
		e.must(0, "", "acl", "add", "--seq", "5", "--name", "secret/*", "--deny", "--comment", "only explicit grants")
		e.must(0, "", "acl", "add", "--seq", "30", "--account", "ci-bot", "--service", "registry.example.com", "--ip", "10.0.0.0/8", "--label", "team=ci",
			"--name", "/ci-[0-9]+\\/.*/", "--actions", "pull,push", "--expires", "2026-12-01T00:00:00Z")
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"acl_list", []string{"acl", "list"}},
			{"acl_export.yaml", []string{"acl", "export"}},
			{"acl_export.json", []string{"acl", "export", "-o", "json"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e.must(0, "", tc.args...)
				golden(t, tc.name, e.out.String())
			})
		}
		e.must(0, "", "acl", "list", "-o", "yaml")
		yamlList := e.out.String()
		e.must(0, "", "acl", "export")
		if e.out.String() != yamlList {
			t.Error("acl list -o yaml differs from acl export")
		}
	})
}

// explainSetup builds the world of the explain goldens.
func explainSetup(t *testing.T, e *testEnv) {
	t.Helper()
	seedUsers(t, e)
	h := passwordHash(t)
	e.must(0, "", "user", "add", "gone", "--password-hash", h, "--label", "full-access=test/*", "--expires", "1d")
	e.must(0, "", "user", "add", "off", "--password-hash", h, "--label", "full-access=test/*")
	e.must(0, "", "user", "disable", "off")
	e.must(0, "", "user", "add", "ci-bot", "--password-hash", h, "--label", "team=ci")
	e.must(0, "", "acl", "defaults")
	e.must(0, "", "acl", "add", "--seq", "5", "--name", "secret/*", "--deny", "--comment", "only explicit grants")
	e.must(0, "", "acl", "add", "--seq", "7", "--account", "bob", "--actions", "*", "--expires", "1h", "--comment", "bob's maintenance window")
	e.must(0, "", "acl", "add", "--seq", "30", "--name", "${labels:team}/*", "--ip", "10.0.0.0/8", "--service", "registry.example.com", "--actions", "pull,push")
	e.must(0, "", "user", "grant", "bob", "secret/bob", "--actions", "pull")
	e.f.Config.Set("service", "registry.example.com")
}

func TestExplain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		explainSetup(t, e)
		e.setNow(fixedNow.Add(2 * time.Hour)) // bob's rule 7 has expired
		e.step("", "acl", "explain", "waldi", "pull,push", "test/app")
		e.step("", "acl", "explain", "reader", "pull,push", "prod/app")
		e.step("", "acl", "explain", "bob", "push", "team/app")
		e.step("", "acl", "explain", "bob", "pull,push", "secret/bob")
		e.step("", "acl", "explain", "bob", "pull", "dock/app", "--at", "2026-11-30")
		e.step("", "acl", "explain", "bob", "pull", "team/app", "--at", "2026-12-04")
		e.step("", "acl", "explain", "off", "pull", "test/app")
		e.step("", "acl", "explain", "gone", "pull", "test/app", "--at", "2026-12-01")
		e.step("", "acl", "explain", "ci-bot", "--scope", "repository:ci/app:pull,push", "--scope", "registry:catalog:*")
		e.step("", "acl", "explain", "ci-bot", "push", "ci/app", "--ip", "10.1.2.3")
		e.step("", "acl", "explain", "ci-bot", "push", "ci/app", "--ip", "10.1.2.3", "--service", "other.example.com")
		e.step("", "acl", "explain", "ghost", "pull", "test/app")
		golden(t, "explain", e.transcript.String())

		e.must(1, "", "acl", "explain", "reader", "pull,push", "prod/app", "-o", "json")
		golden(t, "explain.json", e.out.String())
		var res token.Explanation
		if err := json.Unmarshal(e.out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Granted || !slices.Equal(res.Scopes[0].Granted, []string{"pull"}) || !slices.Equal(res.Scopes[0].Denied, []string{"push"}) {
			t.Errorf("got %+v", res)
		}
	})
}

func TestImportDockerAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		const file = "testdata/auth_config.yml"
		before := snapshot(t, e)
		e.step("", "import", "docker-auth", file, "--dry-run")
		if snapshot(t, e) != before {
			t.Fatal("--dry-run wrote to the store")
		}
		e.step("", "import", "docker-auth", file)
		e.step("", "import", "docker-auth", file)
		e.step("", "user", "list")
		e.step("", "acl", "list")
		// Changed since: the admin's password and the rules.
		e.must(0, "", "user", "passwd", "admin", "--password-hash", passwordHash(t))
		e.must(0, "", "acl", "remove", "60")
		e.step("", "import", "docker-auth", file)
		e.step("", "import", "docker-auth", file, "--update", "--dry-run")
		e.step("", "import", "docker-auth", file, "--update")
		golden(t, "import_docker_auth", e.transcript.String())

		// The imported rules decide like docker_auth: "test" has its
		// namespace and its labels, anonymous users get nothing.
		e.f.Config.Set("service", "registry.example.com")
		e.must(0, "", "acl", "explain", "test", "pull,push", "test/app")
		e.must(0, "", "acl", "explain", "test", "pull", "prod/app")
		e.must(1, "", "acl", "explain", "test", "push", "prod/app")
		u, err := e.St.GetUser(testCtx(t), "test")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.PasswordHash, "$2y$05$") {
			t.Errorf("hash not kept as is: %s", u.PasswordHash)
		}
	})
}

// snapshot renders the store's users and rules, to compare states.
func snapshot(t *testing.T, e *testEnv) string {
	t.Helper()
	ctx := testCtx(t)
	users, err := e.St.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := e.St.ListRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type full struct {
		store.User
		Hash string
	}
	var us []full
	for _, u := range users {
		us = append(us, full{u, u.PasswordHash})
	}
	b, err := json.Marshal(struct {
		Users []full
		Rules []acl.Rule
	}{us, rules})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every write command with --dry-run says what it would do and writes
// nothing.
func TestDryRunWritesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		seedUsers(t, e)
		e.must(0, "", "acl", "defaults")
		e.must(0, "", "acl", "remove", "20")
		e.must(0, "", "acl", "add", "--seq", "20", "--name", "x", "--actions", "pull")
		rules := filepath.Join(t.TempDir(), "rules.yaml")
		os.WriteFile(rules, []byte("- {seq: 1, match: {}, actions: []}\n"), 0o644)
		h := passwordHash(t)
		for _, args := range [][]string{
			{"user", "add", "new", "--password-hash", h},
			{"user", "add", "new", "--password-stdin", "--bcrypt-cost", "10"},
			{"user", "passwd", "waldi", "--password-stdin"},
			{"user", "expire", "waldi", "never"},
			{"user", "disable", "waldi"},
			{"user", "enable", "waldi"},
			{"user", "delete", "waldi"},
			{"user", "label", "set", "waldi", "a=b"},
			{"user", "label", "unset", "waldi", "full-access"},
			{"user", "grant", "waldi", "x/*", "--actions", "pull"},
			{"user", "revoke", "bob", "team/*"},
			{"user", "revoke", "bob", "team/*", "--actions", "push"},
			{"acl", "add", "--name", "y", "--actions", "pull"},
			{"acl", "remove", "10"},
			{"acl", "defaults", "--force"},
			{"acl", "import", rules},
			{"import", "docker-auth", "testdata/auth_config.yml", "--update"},
		} {
			t.Run(strings.Join(args[:2], "_"), func(t *testing.T) {
				before := snapshot(t, e)
				e.must(0, "secret-password\n", append(args, "--dry-run")...)
				msg := e.errOut.String()
				if !strings.Contains(msg, "Would ") && !strings.Contains(msg, "Dry run") && !strings.HasPrefix(msg, "No change") {
					t.Errorf("no \"Would ...\" message:\n%s", e.errOut)
				}
				if after := snapshot(t, e); after != before {
					t.Errorf("--dry-run changed the store:\n%s\n%s", before, after)
				}
			})
		}
	})
}

func TestStoreErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.StoreErr = fmt.Errorf("open mongo store: %w (dial tcp 127.0.0.1:1: connection refused)", store.ErrUnavailable)
	e.must(1, "", "user", "list")
	want := "error: open mongo store: store unavailable (dial tcp 127.0.0.1:1: connection refused) (check that --store or REGCTL_STORE names a store that is running and reachable)\n"
	if e.errOut.String() != want {
		t.Errorf("stderr %q, want %q", e.errOut, want)
	}

	// The production factory without a store URL uses the embedded default.
	ios, _, _, errOut := cmdutil.Test()
	f := cmdutil.NewFactory(ios)
	if !strings.HasPrefix(f.DefaultStore, "sqlite://") || !strings.HasSuffix(f.DefaultStore, "/regctl/regctl.db") {
		t.Errorf("default store %q", f.DefaultStore)
	}
	if f.StorePointer != provision.StorePointer {
		t.Errorf("store pointer %q, want %q", f.StorePointer, provision.StorePointer)
	}
	f.StorePointer = filepath.Join(t.TempDir(), "no-such-pointer") // not this machine's
	def := filepath.Join(t.TempDir(), "default.db")
	f.DefaultStore = "sqlite://" + def
	if code := Execute(context.Background(), f, []string{"user", "list"}); code != cmdutil.ExitOK {
		t.Errorf("exit %d, want %d: %s", code, cmdutil.ExitOK, errOut)
	}
	if _, err := os.Stat(def); err != nil {
		t.Errorf("default store not created: %v", err)
	}
	if code := Execute(context.Background(), f, []string{"user", "list", "--store", ""}); code != cmdutil.ExitOK {
		t.Errorf("empty --store: exit %d, want the default store: %s", code, errOut)
	}
	errOut.Reset()
	if code := Execute(context.Background(), f, []string{"user", "list", "--store", "redis://x"}); code != cmdutil.ExitUsage {
		t.Errorf("exit %d, want %d", code, cmdutil.ExitUsage)
	}
	if !strings.HasPrefix(errOut.String(), `error: unsupported store URL scheme "redis"`) {
		t.Errorf("stderr %q", errOut)
	}
}

// TestStorePointer: without --store, commands use the store that
// `regctl init` pointed the host at, not the default one; --store and
// REGCTL_STORE still win; an unreadable pointer is an error, not a silent
// fallback to another database.
func TestStorePointer(t *testing.T) {
	dir := t.TempDir()
	deployed, def, other := filepath.Join(dir, "deployed.db"), filepath.Join(dir, "default.db"), filepath.Join(dir, "other.db")
	pointer := filepath.Join(dir, "store")
	if err := os.WriteFile(pointer, []byte("sqlite://"+deployed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		ios, _, out, errOut := cmdutil.Test()
		f := cmdutil.NewFactory(ios)
		f.StorePointer, f.DefaultStore = pointer, "sqlite://"+def
		code := Execute(context.Background(), f, args)
		return code, out.String() + errOut.String()
	}
	if code, out := run("acl", "defaults"); code != cmdutil.ExitOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := os.Stat(deployed); err != nil {
		t.Errorf("the pointed-at store was not used: %v", err)
	}
	if _, err := os.Stat(def); err == nil {
		t.Error("the default store was used although init left a pointer")
	}
	if code, out := run("acl", "list", "--store", "sqlite://"+other); code != cmdutil.ExitOK || strings.Contains(out, "labels:full-access") {
		t.Errorf("--store did not win over the pointer: exit %d: %s", code, out)
	}
	t.Setenv("REGCTL_STORE", "sqlite://"+other)
	if code, out := run("acl", "list"); code != cmdutil.ExitOK || strings.Contains(out, "labels:full-access") {
		t.Errorf("REGCTL_STORE did not win over the pointer: exit %d: %s", code, out)
	}
	t.Setenv("REGCTL_STORE", "")
	// Unreadable (a directory: root reads any file whatever its mode).
	if err := os.Remove(pointer); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pointer, 0o700); err != nil {
		t.Fatal(err)
	}
	if code, out := run("acl", "list"); code == cmdutil.ExitOK || !strings.Contains(out, "run as root, or pass --store") {
		t.Errorf("unreadable pointer: exit %d: %s", code, out)
	}
}

// A SQLite URL reaches the SQLite store through OpenStore.
func TestOpenStoreSQLite(t *testing.T) {
	ios, _, out, errOut := cmdutil.Test()
	f := cmdutil.NewFactory(ios)
	url := "sqlite://" + filepath.Join(t.TempDir(), "regctl.db")
	if code := Execute(context.Background(), f, []string{"acl", "defaults", "--store", url}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f = cmdutil.NewFactory(ios)
	if code := Execute(context.Background(), f, []string{"acl", "list", "--store", url}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out.String(), "${labels:full-access}") {
		t.Errorf("acl list: %s", out)
	}
}

func TestCompletion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		seedUsers(t, e)
		e.must(0, "", "acl", "defaults")
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"user", "show", ""}, []string{"bob\tactive", "reader\tactive", "waldi\tactive"}},
			{[]string{"user", "show", "bob", ""}, nil},
			{[]string{"user", "revoke", "bob", ""}, []string{"team/*\tpull,push", "dock/app\tpull"}},
			{[]string{"user", "label", "unset", "waldi", ""}, []string{"full-access", "full-access=test/*", "full-access=socke*"}},
			{[]string{"acl", "remove", ""}, []string{"10\tname=${labels:full-access} -> *", "20\tname=${labels:read-only-access} -> pull"}},
			{[]string{"acl", "explain", "waldi", ""}, []string{"pull", "push", "pull,push", "delete"}},
			{[]string{"user", "list", "-o", ""}, []string{"table", "json", "yaml"}},
		} {
			e.must(0, "", append([]string{"__complete"}, tc.args...)...)
			lines := strings.Split(strings.TrimSpace(e.out.String()), "\n")
			got := lines[:len(lines)-1] // the last line is the directive
			if !slices.Equal(got, tc.want) && (len(got) != 0 || tc.want != nil) {
				t.Errorf("complete %q: got %q, want %q", tc.args, got, tc.want)
			}
		}
		// An unreachable store: no suggestions and no noise.
		e.StoreErr = store.ErrUnavailable
		e.must(0, "", "__complete", "user", "show", "")
		if strings.TrimSpace(e.out.String()) != ":4" || strings.Contains(e.errOut.String(), "error") {
			t.Errorf("with the store down: stdout %q stderr %q", e.out, e.errOut)
		}
		e.StoreErr = nil
		for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
			e.must(0, "", "completion", sh)
			if !strings.Contains(e.out.String(), "regctl") {
				t.Errorf("completion %s: %q", sh, e.out.String()[:min(200, e.out.Len())])
			}
		}
		e.must(2, "", "completion", "tcsh")
	})
}

// The password prompt on a terminal is asked twice, without echo.
func TestPasswordPrompt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *testEnv) {
		e.ios.SetStdinTTY(true)
		answers := []string{"typed-password", "typed-password"}
		e.ios.SetReadPassword(func() ([]byte, error) {
			if len(answers) == 0 {
				return nil, errors.New("no more input")
			}
			a := answers[0]
			answers = answers[1:]
			return []byte(a), nil
		})
		e.must(0, "", "user", "add", "waldi", "--bcrypt-cost", "10")
		if e.errOut.String() != "Password: \nRepeat password: \nCreated user waldi (never expires)\n" {
			t.Errorf("stderr %q", e.errOut)
		}
		u, err := e.St.GetUser(testCtx(t), "waldi")
		if err != nil {
			t.Fatal(err)
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("typed-password")) != nil {
			t.Error("the stored hash does not verify")
		}
	})
}

// TestREADME records one example of every admin command with its exact
// output, at the fixed clock, for the README's "administering users"
// section: testdata/readme.golden.
func TestREADME(t *testing.T) {
	b := cmdtest.Backends[0]
	e := newEnv(t, nil)
	e.St = b.Open(t, e.now)
	e.f.Config.Set("service", "registry.example.com")
	auth := filepath.Join(t.TempDir(), "auth_config.yml")
	data, err := os.ReadFile("testdata/auth_config.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auth, data, 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stdin string
		args  []string
	}{
		{"", []string{"acl", "defaults"}},
		{"waldis-password\n", []string{"user", "add", "waldi", "--password-stdin", "--label", "full-access=test/*", "--expires", "90d"}},
		{"readers-password\n", []string{"user", "add", "reader", "--password-stdin", "--label", "read-only-access=prod/*"}},
		{"", []string{"user", "add", "legacy", "--password-hash", "$2y$10$W50MKqZGAMLcTMs7yTOd1uI3vAm1TaDeVwiBs96gAfiBqK/mkIrDy", "--dry-run"}},
		{"", []string{"user", "grant", "waldi", "team/*", "--actions", "pull,push"}},
		{"", []string{"user", "grant", "reader", "team/app", "--actions", "pull", "--expires", "30d"}},
		{"", []string{"user", "label", "set", "waldi", "full-access=test/*", "full-access=socke*"}},
		{"", []string{"user", "label", "unset", "waldi", "full-access=socke*"}},
		{"", []string{"user", "list"}},
		{"", []string{"user", "list", "--expiring", "7d"}},
		{"", []string{"user", "show", "waldi"}},
		{"", []string{"user", "show", "reader", "-o", "json"}},
		{"", []string{"user", "revoke", "waldi", "team/*", "--actions", "push"}},
		{"", []string{"user", "expire", "reader", "2027-06-30"}},
		{"", []string{"user", "disable", "reader"}},
		{"", []string{"user", "enable", "reader"}},
		{"new-password\n", []string{"user", "passwd", "waldi", "--password-stdin"}},
		{"", []string{"acl", "add", "--seq", "5", "--name", "secret/*", "--deny", "--comment", "only explicit grants"}},
		{"", []string{"acl", "add", "--account", "ci-bot", "--name", "ci/*", "--actions", "pull,push", "--expires", "2027-01-01"}},
		{"", []string{"acl", "list"}},
		{"", []string{"acl", "export"}},
		{"", []string{"acl", "remove", "30"}},
		{"", []string{"acl", "explain", "waldi", "pull,push", "test/app"}},
		{"", []string{"acl", "explain", "reader", "pull,push", "prod/app"}},
		{"", []string{"user", "delete", "reader", "--yes"}},
		{"", []string{"import", "docker-auth", "auth_config.yml", "--dry-run"}},
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(auth))
	for _, s := range steps {
		e.step(s.stdin, s.args...)
	}
	t.Chdir(wd)
	out := strings.ReplaceAll(e.transcript.String(), "$ regctl user add waldi --password-stdin", "$ printf '%s\\n' \"$PASSWORD\" | regctl user add waldi --password-stdin")
	out = strings.ReplaceAll(out, "$ regctl user add reader --password-stdin", "$ printf '%s\\n' \"$PASSWORD\" | regctl user add reader --password-stdin")
	out = strings.ReplaceAll(out, "$ regctl user passwd waldi --password-stdin", "$ printf '%s\\n' \"$NEW_PASSWORD\" | regctl user passwd waldi --password-stdin")
	golden(t, "readme", out)
}
