package cmdtest

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// FlagCase is one flag-parsing case of TestFlags.
type FlagCase[O any] struct {
	Name  string
	Args  []string
	Stdin string
	Setup func(e *Env)
	// WantErr is a substring of the error; empty means success.
	WantErr  string
	WantCode int
	Check    func(t *testing.T, o *O)
}

// TestFlags checks flag and argument parsing only: each command gets a
// runF that captures its options, as in cli/cli.
func TestFlags[O any](t *testing.T, build func(*cmdutil.Factory, func(context.Context, *O) error) *cobra.Command, cases []FlagCase[O]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			e := NewEnv(t, nil)
			e.F.Config.Set("service", "registry.example.com")
			if tc.Setup != nil {
				tc.Setup(e)
			}
			e.In.WriteString(tc.Stdin)
			var got *O
			cmd := build(e.F, func(_ context.Context, o *O) error {
				got = o
				return nil
			})
			err := RunCmd(cmd, e.IOS, tc.Args...)
			if tc.WantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got == nil {
					t.Fatal("runF was not called")
				}
				if tc.Check != nil {
					tc.Check(t, got)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.WantErr)
			}
			if !strings.Contains(err.Error(), tc.WantErr) {
				t.Errorf("error %q, want it to contain %q", err, tc.WantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			want := tc.WantCode
			if want == 0 {
				want = cmdutil.ExitUsage
			}
			if code := cmdutil.ExitCode(err); code != want {
				t.Errorf("exit code %d, want %d (error %v)", code, want, err)
			}
			if got != nil {
				t.Error("runF was called despite the error")
			}
		})
	}
}
