package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/store"
)

// fixedNow is the clock of every command test.
var fixedNow = cmdtest.FixedNow

func testCtx(t testing.TB) context.Context { return cmdtest.Ctx(t) }

// forEachBackend runs fn once per backend, each with a fresh store.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *testEnv)) {
	cmdtest.ForEachBackend(t, func(t *testing.T) (*testEnv, *cmdtest.Env) {
		e := newEnv(t, nil)
		return e, e.Env
	}, fn)
}

// testEnv is cmdtest's environment that runs whole regctl command lines
// and keeps a transcript of them for the golden files.
type testEnv struct {
	*cmdtest.Env
	t               *testing.T
	f               *cmdutil.Factory
	ios             *cmdutil.IOStreams
	in, out, errOut *bytes.Buffer
	transcript      strings.Builder
}

func newEnv(t *testing.T, st store.Store) *testEnv {
	c := cmdtest.NewEnv(t, st)
	c.Root = NewCmdRoot
	c.F.AppVersion = Version
	return &testEnv{Env: c, t: t, f: c.F, ios: c.IOS, in: c.In, out: c.Out, errOut: c.ErrOut}
}

func (e *testEnv) now() time.Time { return e.Now() }

func (e *testEnv) setNow(t time.Time) { e.SetNow(t) }

// run executes regctl with args (stdin as given) and returns the exit
// code; stdout and stderr stay in e.out and e.errOut.
func (e *testEnv) run(stdin string, args ...string) int {
	e.t.Helper()
	return e.Run(stdin, args...)
}

// must runs args and fails the test unless the exit code is want.
func (e *testEnv) must(want int, stdin string, args ...string) {
	e.t.Helper()
	e.Must(want, stdin, args...)
}

// step runs args and appends the command, its exit code and output to
// the transcript that golden files compare.
func (e *testEnv) step(stdin string, args ...string) int {
	e.t.Helper()
	code := e.run(stdin, args...)
	fmt.Fprintf(&e.transcript, "$ regctl %s\n", shellJoin(args))
	if e.out.Len() > 0 {
		e.transcript.WriteString(e.out.String())
	}
	if e.errOut.Len() > 0 {
		for _, line := range strings.SplitAfter(strings.TrimSuffix(e.errOut.String(), "\n"), "\n") {
			e.transcript.WriteString("stderr: " + line)
		}
		e.transcript.WriteString("\n")
	}
	if code != 0 {
		fmt.Fprintf(&e.transcript, "[exit %d]\n", code)
	}
	e.transcript.WriteString("\n")
	return code
}

func shellJoin(args []string) string { return cmdtest.ShellJoin(args) }

// golden compares got with testdata/NAME.golden, or rewrites the file with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	cmdtest.Golden(t, name, got)
}

func diffLines(want, got string) string { return cmdtest.DiffLines(want, got) }

const testHash = cmdtest.TestHash

func passwordHash(testing.TB) string { return testHash }

func decodeYAML(data []byte, v any) error { return yaml.Unmarshal(data, v) }
