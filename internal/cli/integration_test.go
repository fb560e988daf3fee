//go:build integration

package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/testenv"
)

// The production path: --store with a FerretDB URI, through OpenStore.
func TestIntegrationOpenStoreMongo(t *testing.T) {
	base := testenv.Require(t, testenv.EnvMongoURI, cmdtest.MongoWhat)
	db := testenv.UniqueName("regctl_cli")
	uri := testenv.MongoURI(t, base, db)
	t.Cleanup(func() { cmdtest.DropDatabase(t, base, db) })
	ios, in, out, errOut := cmdutil.Test()
	run := func(stdin string, args ...string) int {
		in.Reset()
		out.Reset()
		errOut.Reset()
		in.WriteString(stdin)
		return Execute(context.Background(), cmdutil.NewFactory(ios), append(args, "--store", uri))
	}
	if code := run("secret-password\n", "user", "add", "waldi", "--password-stdin", "--bcrypt-cost", "10", "--label", "full-access=test/*"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, errOut)
	}
	if code := run("", "acl", "defaults"); code != 0 {
		t.Fatalf("acl defaults: exit %d: %s", code, errOut)
	}
	if code := run("", "acl", "explain", "waldi", "push", "test/app"); code != 0 {
		t.Fatalf("acl explain: exit %d: %s%s", code, out, errOut)
	}
	if code := run("", "acl", "explain", "waldi", "push", "prod/app"); code != 1 {
		t.Fatalf("acl explain prod/app: exit %d, want 1: %s%s", code, out, errOut)
	}
	if code := run("", "user", "show", "ghost"); code != 1 || errOut.String() != "error: user ghost not found\n" {
		t.Errorf("user show ghost: exit %d, stderr %q", code, errOut)
	}
}

// An unreachable MongoDB: one actionable line, exit 1, and completion
// stays silent.
func TestIntegrationStoreDown(t *testing.T) {
	bin := testenv.RequireBinary(t, testenv.EnvFerretDB, "ferretdb", "FerretDB v1.24.2")
	base, stop := testenv.StartFerretDB(t, bin)
	uri := testenv.MongoURI(t, base, "regctl_down")
	stop()
	ios, _, out, errOut := cmdutil.Test()
	start := time.Now()
	code := Execute(context.Background(), cmdutil.NewFactory(ios), []string{"user", "list", "--store", uri + "?serverSelectionTimeoutMS=1500"})
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	msg := errOut.String()
	if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "store unavailable") || !strings.Contains(msg, "names a store that is running") {
		t.Errorf("stderr %q: want one actionable line", msg)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s", d)
	}
	out.Reset()
	errOut.Reset()
	code = Execute(context.Background(), cmdutil.NewFactory(ios), []string{"__complete", "user", "show", "--store", uri, ""})
	if code != 0 || strings.TrimSpace(out.String()) != ":4" || strings.Contains(errOut.String(), "error") {
		t.Errorf("completion with the store down: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
