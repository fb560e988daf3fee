package user

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
)

// newEnv runs `regctl user` command lines.
func newEnv(t *testing.T) (*cmdtest.Env, *cmdtest.Env) {
	e := cmdtest.NewEnv(t, nil)
	e.Root = func(f *cmdutil.Factory) *cobra.Command { return cmdtest.Root(f, NewCmdUser(f)) }
	return e, e
}

// Direct tests of run functions with hand-built options, as cli/cli does.
func TestRunFunctions(t *testing.T) {
	cmdtest.ForEachBackend(t, newEnv, func(t *testing.T, e *cmdtest.Env) {
		cmdtest.SeedUsers(t, e)
		ctx := cmdtest.Ctx(t)
		if err := listRun(ctx, &ListOptions{Deps: e.F.Deps(), Output: cmdutil.FormatJSON, Expiring: 7 * 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		var views []View
		if err := json.Unmarshal(e.Out.Bytes(), &views); err != nil {
			t.Fatal(err)
		}
		if len(views) != 1 || views[0].Username != "bob" {
			t.Errorf("expiring within 7d: %+v", views)
		}

		err := revokeRun(ctx, &RevokeOptions{Deps: e.F.Deps(), Username: "bob", Pattern: "team/*", Actions: []string{"push"}})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := e.St.GetUser(ctx, "bob")
		if !slices.Equal(u.Grants[0].Actions, []string{"pull"}) {
			t.Errorf("grants after revoking push: %+v", u.Grants)
		}
		err = deleteRun(ctx, &DeleteOptions{Deps: e.F.Deps(), Username: "ghost", Yes: true})
		if err == nil || err.Error() != "user ghost not found" {
			t.Errorf("delete ghost: %v", err)
		}
	})
}
