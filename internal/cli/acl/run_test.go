package acl

import (
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
)

func newEnv(t *testing.T) (*cmdtest.Env, *cmdtest.Env) {
	e := cmdtest.NewEnv(t, nil)
	return e, e
}

// Direct tests of run functions with hand-built options, as cli/cli does.
func TestRunFunctions(t *testing.T) {
	cmdtest.ForEachBackend(t, newEnv, func(t *testing.T, e *cmdtest.Env) {
		ctx := cmdtest.Ctx(t)
		if err := addRun(ctx, &AddOptions{Deps: e.F.Deps(), AutoSeq: true, Rule: acl.Rule{Actions: []string{}}}); err != nil {
			t.Fatal(err)
		}
		if err := addRun(ctx, &AddOptions{Deps: e.F.Deps(), AutoSeq: true, Rule: acl.Rule{Match: acl.Match{Name: ptr("x")}, Actions: []string{"pull"}}}); err != nil {
			t.Fatal(err)
		}
		rules, _ := e.St.ListRules(ctx)
		if len(rules) != 2 || rules[0].Seq != 10 || rules[1].Seq != 20 {
			t.Errorf("auto seqs: %+v", rules)
		}
		if !strings.Contains(e.ErrOut.String(), "Note: the rule has no conditions") {
			t.Errorf("no warning for a rule without conditions:\n%s", e.ErrOut)
		}
	})
}

func ptr[T any](v T) *T { return &v }
