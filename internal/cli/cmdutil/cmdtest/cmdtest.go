// Package cmdtest is the test environment the command packages share:
// buffer-backed streams, a factory with a fixed, settable clock in UTC,
// one store for every command a test runs, and a runner for the
// flag-parsing tests of a single command.
package cmdtest

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
)

// FixedNow is the clock of every command test.
var FixedNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// TestHash is a bcrypt hash (cost 10, $2y$ as htpasswd writes it) of
// "secret-password", for the users tests create with --password-hash:
// fixed, so that transcripts are stable, and precomputed, because bcrypt is
// slow under the race detector.
const TestHash = "$2y$10$W50MKqZGAMLcTMs7yTOd1uI3vAm1TaDeVwiBs96gAfiBqK/mkIrDy"

// Ctx is a context that ends with the test (or after a minute).
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// OpenSQLite opens a fresh, empty SQLite store whose clock (CreatedAt,
// UpdatedAt) is now; it registers its own cleanup.
func OpenSQLite(t *testing.T, now func() time.Time) store.Store {
	t.Helper()
	st, err := sqlite.Open(Ctx(t), filepath.Join(t.TempDir(), "regctl.db"), sqlite.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// keepOpen is a store whose Close does nothing: commands close the store
// they get, the test closes it at cleanup.
type keepOpen struct{ store.Store }

func (keepOpen) Close(context.Context) error { return nil }

// Env is a Factory with test streams, a fixed clock in UTC and one store
// shared by every command it runs.
type Env struct {
	T               *testing.T
	F               *cmdutil.Factory
	IOS             *cmdutil.IOStreams
	In, Out, ErrOut *bytes.Buffer
	St              store.Store
	StoreErr        error // returned by the factory instead of St
	// Root builds the command tree Run executes: regctl's whole tree in
	// the root package, Root(f, NewCmdNoun(f)) in a noun's package.
	Root  func(*cmdutil.Factory) *cobra.Command
	mu    sync.Mutex
	clock time.Time
}

// NewEnv returns an environment on st (which may be set later) at FixedNow.
func NewEnv(t *testing.T, st store.Store) *Env {
	ios, in, out, errOut := cmdutil.Test()
	e := &Env{T: t, IOS: ios, In: in, Out: out, ErrOut: errOut, St: st, clock: FixedNow}
	e.F = &cmdutil.Factory{IO: ios, Config: cmdutil.NewViper(), Now: e.Now, Location: time.UTC}
	e.F.Store = func(context.Context) (store.Store, error) {
		if e.StoreErr != nil {
			return nil, e.StoreErr
		}
		return keepOpen{e.St}, nil
	}
	e.F.Logger = func() *slog.Logger { return cmdutil.NewLogger(e.F) }
	return e
}

// Now is the environment's clock.
func (e *Env) Now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

// SetNow moves the clock.
func (e *Env) SetNow(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clock = t
}

// RunCmd executes one command built by a NewCmd function with args, for
// the flag-parsing tests, and returns its error.
func RunCmd(cmd *cobra.Command, ios *cmdutil.IOStreams, args ...string) error {
	cmd.SetArgs(append([]string{}, args...)) // nil would mean os.Args
	cmd.SetIn(ios.In)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.FlagError{Err: err} })
	return cmd.ExecuteContext(context.Background())
}

// Root is a stand-in for regctl's root command over cmds, for a noun's
// package: the same name, global flags, error handling and --config
// loading.
func Root(f *cmdutil.Factory, cmds ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{Use: "regctl", SilenceErrors: true, SilenceUsage: true}
	cmdutil.SetupRoot(root, f)
	root.AddCommand(cmds...)
	return root
}

// Run executes a command line (stdin as given) in e.Root and returns the
// exit code; stdout and stderr stay in e.Out and e.ErrOut.
func (e *Env) Run(stdin string, args ...string) int {
	e.T.Helper()
	e.In.Reset()
	e.Out.Reset()
	e.ErrOut.Reset()
	e.In.WriteString(stdin)
	e.IOS.ResetInput()
	return cmdutil.Execute(Ctx(e.T), e.Root(e.F), e.IOS, args)
}

// Must runs args and fails the test unless the exit code is want.
func (e *Env) Must(want int, stdin string, args ...string) {
	e.T.Helper()
	if got := e.Run(stdin, args...); got != want {
		e.T.Fatalf("regctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, want, e.Out, e.ErrOut)
	}
}

// SeedUsers creates the users most tests start from, through the CLI.
func SeedUsers(t *testing.T, e *Env) {
	t.Helper()
	h := TestHash
	e.Must(0, "", "user", "add", "waldi", "--password-hash", h, "--label", "full-access=test/*", "--label", "full-access=socke*", "--expires", "90d")
	e.Must(0, "", "user", "add", "reader", "--password-hash", h, "--label", "read-only-access=prod/*")
	e.Must(0, "", "user", "add", "bob", "--password-hash", h, "--expires", "2026-12-03T18:00:00Z")
	e.Must(0, "", "user", "grant", "bob", "team/*", "--actions", "pull,push")
	e.Must(0, "", "user", "grant", "bob", "dock/app", "--actions", "pull", "--expires", "12h")
}
