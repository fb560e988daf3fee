package serve

import (
	"context"
	"io"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/config"
)

func TestNewCmdServeOps(t *testing.T) {
	base := []string{"--issuer", "regctl", "--service", "registry.test"}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o *Options)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, o *Options) {
			if o.Token.FailLimitIP != config.DefaultFailLimitIP || o.Token.FailLimitAccount != config.DefaultFailLimitAccount {
				t.Errorf("limits %+v %+v, want the defaults", o.Token.FailLimitIP, o.Token.FailLimitAccount)
			}
			if o.Ops != (Ops{}) {
				t.Errorf("ops %+v, want none", o.Ops)
			}
		}},
		{name: "all set", args: []string{"--fail-limit-ip", "5/min,burst=10", "--fail-limit-account", "off",
			"--metrics-listen", "127.0.0.1:9101", "--certs-dir", "/opt/regctl/certs", "--audit-log", "-"},
			check: func(t *testing.T, o *Options) {
				if want := (config.FailLimit{Rate: rate.Limit(5.0 / 60), Burst: 10}); o.Token.FailLimitIP != want {
					t.Errorf("ip limit %+v, want %+v", o.Token.FailLimitIP, want)
				}
				if !o.Token.FailLimitAccount.Off() {
					t.Errorf("account limit %+v, want off", o.Token.FailLimitAccount)
				}
				if want := (Ops{MetricsListen: "127.0.0.1:9101", CertsDir: "/opt/regctl/certs", AuditLog: "-"}); o.Ops != want {
					t.Errorf("ops %+v, want %+v", o.Ops, want)
				}
			}},
		{name: "bad ip limit", args: []string{"--fail-limit-ip", "lots"}, wantErr: "--fail-limit-ip: fail limit \"lots\""},
		{name: "bad account limit", args: []string{"--fail-limit-account", "5/min,burst=x"}, wantErr: "--fail-limit-account"},
		{name: "bad metrics address", args: []string{"--metrics-listen", "9101"}, wantErr: "--metrics-listen \"9101\": want HOST:PORT"},
		{name: "metrics on the token address", args: []string{"--listen", "127.0.0.1:5001", "--metrics-listen", "127.0.0.1:5001"},
			wantErr: "--metrics-listen must differ from --listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := cmdtest.NewEnv(t, nil)
			var got *Options
			cmd := NewCmdServe(e.F, func(_ context.Context, o *Options) error { got = o; return nil })
			cmd.SetArgs(append(append([]string{}, base...), tt.args...))
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
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
			tt.check(t, got)
		})
	}
}
