package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

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

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " *$?'\"{}[]()<>|;&") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// golden compares got with testdata/NAME.golden, or rewrites the file with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, diffLines(string(want), got))
	}
}

// diffLines is a minimal line diff for golden mismatches.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := max(len(w), len(g))
	shown := 0
	for i := 0; i < n && shown < 40; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d\n  want: %q\n  got:  %q\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// runCmd executes one command built by a NewCmd function with args.
func runCmd(cmd *cobra.Command, ios *cmdutil.IOStreams, args ...string) error {
	return cmdtest.RunCmd(cmd, ios, args...)
}

const testHash = cmdtest.TestHash

func passwordHash(testing.TB) string { return testHash }

func ptr[T any](v T) *T { return &v }

func decodeYAML(data []byte, v any) error { return yaml.Unmarshal(data, v) }
