package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// fixedNow is the clock of every command test.
var fixedNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// backend opens a fresh, empty store whose clock (CreatedAt, UpdatedAt)
// is now; it registers its own cleanup.
type backend struct {
	name string
	open func(t *testing.T, now func() time.Time) store.Store
}

// backends are the real stores every run test uses: SQLite always,
// FerretDB with -tags integration (integration_test.go adds it).
var backends = []backend{{name: "sqlite", open: openSQLite}}

func openSQLite(t *testing.T, now func() time.Time) store.Store {
	t.Helper()
	st, err := sqlite.Open(testCtx(t), filepath.Join(t.TempDir(), "regctl.db"), sqlite.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// forEachBackend runs fn once per backend, each with a fresh store.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *testEnv)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.st = b.open(t, e.now)
			fn(t, e)
		})
	}
}

// keepOpen is a store whose Close does nothing: commands close the store
// they get, the test closes it at cleanup.
type keepOpen struct{ store.Store }

func (keepOpen) Close(context.Context) error { return nil }

// testEnv is a cmdutil.Factory with test streams, a fixed clock in UTC and one
// store shared by every command it runs.
type testEnv struct {
	t               *testing.T
	f               *cmdutil.Factory
	ios             *cmdutil.IOStreams
	in, out, errOut *bytes.Buffer
	st              store.Store
	storeErr        error // returned by the factory instead of st
	mu              sync.Mutex
	clock           time.Time
	transcript      strings.Builder
}

func newEnv(t *testing.T, st store.Store) *testEnv {
	ios, in, out, errOut := cmdutil.Test()
	e := &testEnv{t: t, ios: ios, in: in, out: out, errOut: errOut, st: st, clock: fixedNow}
	e.f = &cmdutil.Factory{IO: ios, Config: cmdutil.NewViper(), Now: e.now, Location: time.UTC}
	e.f.Store = func(context.Context) (store.Store, error) {
		if e.storeErr != nil {
			return nil, e.storeErr
		}
		return keepOpen{e.st}, nil
	}
	e.f.Logger = func() *slog.Logger { return cmdutil.NewLogger(e.f) }
	return e
}

func (e *testEnv) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

func (e *testEnv) setNow(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clock = t
}

// run executes regctl with args (stdin as given) and returns the exit
// code; stdout and stderr stay in e.out and e.errOut.
func (e *testEnv) run(stdin string, args ...string) int {
	e.t.Helper()
	e.in.Reset()
	e.out.Reset()
	e.errOut.Reset()
	e.in.WriteString(stdin)
	e.ios.ResetInput()
	return Execute(testCtx(e.t), e.f, args)
}

// must runs args and fails the test unless the exit code is want.
func (e *testEnv) must(want int, stdin string, args ...string) {
	e.t.Helper()
	if got := e.run(stdin, args...); got != want {
		e.t.Fatalf("regctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, want, e.out, e.errOut)
	}
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

// runCmd executes one command built by a NewCmd function with args, for
// the flag-parsing tests, and returns its error.
func runCmd(cmd *cobra.Command, ios *cmdutil.IOStreams, args ...string) error {
	cmd.SetArgs(append([]string{}, args...)) // nil would mean os.Args
	cmd.SetIn(ios.In)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.FlagError{Err: err} })
	return cmd.ExecuteContext(context.Background())
}

// testHash is a bcrypt hash (cost 10, $2y$ as htpasswd writes it) of
// "secret-password", for the users tests create with --password-hash:
// fixed, so that transcripts are stable, and precomputed, because bcrypt is
// slow under the race detector.
const testHash = "$2y$10$W50MKqZGAMLcTMs7yTOd1uI3vAm1TaDeVwiBs96gAfiBqK/mkIrDy"

func passwordHash(testing.TB) string { return testHash }

func ptr[T any](v T) *T { return &v }

func decodeYAML(data []byte, v any) error { return yaml.Unmarshal(data, v) }
