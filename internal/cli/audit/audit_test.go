package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/token"
)

func auditLine(t *testing.T, r token.AuditRecord) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func testAuditRecords(t *testing.T) (lines []string) {
	ten := int64(10)
	at := func(s int) time.Time { return cmdtest.FixedNow.Add(time.Duration(s) * time.Second) }
	for _, r := range []token.AuditRecord{
		{Time: at(0), User: "waldi", ClientIP: "192.0.2.1", Grant: "basic", Requested: []string{"repository:test/app:pull,push"},
			Granted: []string{"repository:test/app:pull,push"}, DecidedBy: []token.DecidedBy{{Scope: "repository:test/app", Rule: &ten}},
			Result: "issued", Status: 200},
		{Time: at(1), User: "bob", ClientIP: "192.0.2.2", Grant: "password", Requested: []string{"repository:team/app:push"},
			Granted: []string{"repository:team/app:push"}, DecidedBy: []token.DecidedBy{{Scope: "repository:team/app", Grants: []string{"team/*"}}},
			Result: "issued", Status: 200},
		{Time: at(2), User: "waldi", ClientIP: "198.51.100.9", Grant: "basic", Requested: []string{}, Granted: []string{},
			Result: "unauthorized", Status: 401, Reason: "wrong password"},
		{Time: at(3), User: "waldi", ClientIP: "198.51.100.9", Grant: "basic", Requested: []string{}, Granted: []string{},
			Result: "rate_limited", Status: 429, Reason: "too many failed authentications from this client"},
		{Time: at(4), User: "waldi\"x", ClientIP: "198.51.100.9", Grant: "basic", Requested: []string{}, Granted: []string{},
			Result: "unauthorized", Status: 401, Reason: "unknown user"},
	} {
		lines = append(lines, auditLine(t, r))
	}
	return lines
}

func TestNewCmdTail(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		config  string // audit-log from the environment
		want    TailOptions
		wantErr string
	}{
		{name: "defaults", args: []string{"--file", "a.log"}, want: TailOptions{File: "a.log", Lines: 10}},
		{name: "all flags", args: []string{"--file", "a.log", "--user", "waldi", "-n", "3", "--follow"},
			want: TailOptions{File: "a.log", User: "waldi", Lines: 3, Follow: true}},
		{name: "from the serve setting", config: "/var/log/regctl/audit.log", want: TailOptions{File: "/var/log/regctl/audit.log", Lines: 10}},
		{name: "no file", wantErr: "no audit log: pass --file"},
		{name: "stdout", config: "-", wantErr: "goes to regctl serve's stdout"},
		{name: "negative n", args: []string{"--file", "a", "-n", "-1"}, wantErr: "-n -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.config != "" {
				t.Setenv("REGCTL_AUDIT_LOG", tt.config)
			}
			var got *TailOptions
			cmd := NewCmdTail(e.F, func(_ context.Context, o *TailOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(e.Out)
			cmd.SetErr(e.ErrOut)
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.File != tt.want.File || got.User != tt.want.User || got.Lines != tt.want.Lines || got.Follow != tt.want.Follow {
				t.Errorf("options %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAuditTailRun(t *testing.T) {
	lines := testAuditRecords(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")+"not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)

	// Not a terminal: the JSON lines as they are.
	e.Must(0, "", "audit", "tail", "--file", path, "--user", "waldi", "-n", "2")
	if got, want := e.Out.String(), lines[2]+lines[3]; got != want {
		t.Errorf("tail --user waldi -n 2:\n%s\nwant\n%s", got, want)
	}
	e.Must(0, "", "audit", "tail", "--file", path, "-n", "0")
	if got := strings.Count(e.Out.String(), "\n"); got != len(lines) {
		t.Errorf("-n 0 printed %d lines, want %d", got, len(lines))
	}
	e.Must(0, "", "audit", "tail", "--file", path, "--user", `waldi"x`)
	if got := e.Out.String(); got != lines[4] {
		t.Errorf("a user name with a quote: %q", got)
	}

	// A terminal: one line per decision.
	e.IOS.SetStdoutTTY(true)
	e.Must(0, "", "audit", "tail", "--file", path, "-n", "5")
	want := `2026-11-29T12:00:00Z issued waldi 192.0.2.1 basic: repository:test/app:pull,push → repository:test/app:pull,push (repository:test/app: rule 10)
2026-11-29T12:00:01Z issued bob 192.0.2.2 password: repository:team/app:push → repository:team/app:push (repository:team/app: grant team/*)
2026-11-29T12:00:02Z unauthorized waldi 198.51.100.9 basic: wrong password
2026-11-29T12:00:03Z rate_limited waldi 198.51.100.9 basic: too many failed authentications from this client
2026-11-29T12:00:04Z unauthorized waldi"x 198.51.100.9 basic: unknown user
`
	if got := e.Out.String(); got != want {
		t.Errorf("terminal output:\n%s\nwant\n%s", got, want)
	}
	e.Must(0, "", "audit", "tail", "--file", path, "-n", "0")
	if !strings.Contains(e.ErrOut.String(), "skipped 1 lines that are not audit records") {
		t.Errorf("no warning about the bad line: %q", e.ErrOut.String())
	}

	if code := e.Run("", "audit", "tail", "--file", filepath.Join(t.TempDir(), "missing.log")); code != cmdutil.ExitError ||
		!strings.Contains(e.ErrOut.String(), "open audit log") {
		t.Errorf("missing file: exit %d, %s", code, e.ErrOut)
	}
}

// lockedBuffer is an output stream safe to read while a command writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAuditTailFollow(t *testing.T) {
	lines := testAuditRecords(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(lines[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	ios, _, _, _ := cmdutil.Test()
	var out lockedBuffer
	ios.Out = &out
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- tailRun(ctx, &TailOptions{IO: ios, Loc: time.UTC, File: path, User: "waldi", Lines: 10, Follow: true, Poll: 10 * time.Millisecond})
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for out.String() != want {
			if time.Now().After(deadline) {
				t.Fatalf("output %q, want %q", out.String(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(lines[0])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// bob's line is filtered out; waldi's arrives in two writes.
	half := len(lines[2]) / 2
	for _, s := range []string{lines[1], lines[2][:half]} {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	waitFor(lines[0])
	if _, err := f.WriteString(lines[2][half:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(lines[0] + lines[2])

	// Rotated: a new file at the path is followed from its start.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(lines[3]), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(lines[0] + lines[2] + lines[3])
	// Truncated (logrotate's copytruncate), then written again: read from
	// the start.
	if len(lines[2]) >= len(lines[3]) {
		t.Fatal("the test needs a shorter line to write after truncating")
	}
	if err := os.WriteFile(path, []byte(lines[2]), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(lines[0] + lines[2] + lines[3] + lines[2])

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A user name is chosen by whoever asks for a token: on a terminal it must
// not carry escape sequences.
func TestFormatAuditRecordEscapes(t *testing.T) {
	r := token.AuditRecord{Time: cmdtest.FixedNow, User: "evil\x1b[2J", ClientIP: "192.0.2.1", Grant: "basic",
		Result: "unauthorized", Status: 401, Reason: "unknown user\x07"}
	got := formatAuditRecord(&r, time.UTC)
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("control characters reach the terminal: %q", got)
	}
	if !strings.Contains(got, `"evil\x1b[2J"`) {
		t.Errorf("the user name is not quoted: %q", got)
	}
}

// newEnv runs `regctl audit` command lines.
func newEnv(t *testing.T) *cmdtest.Env {
	e := cmdtest.NewEnv(t, nil)
	e.Root = func(f *cmdutil.Factory) *cobra.Command { return cmdtest.Root(f, NewCmdAudit(f)) }
	return e
}
