package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	regstore "github.com/regctl/regctl/internal/store"
)

func TestNewCmdStoreMigrate(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     MigrateOptions
		wantCode int
		wantErr  string
	}{
		{name: "both", args: []string{"--from", "sqlite:///a.db", "--to", "mongodb://h/db", "--prune", "--dry-run"},
			want: MigrateOptions{From: "sqlite:///a.db", To: "mongodb://h/db", Prune: true, DryRun: true}},
		{name: "missing to", args: []string{"--from", "sqlite:///a.db"}, wantCode: cmdutil.ExitUsage, wantErr: "--from and --to"},
		{name: "same", args: []string{"--from", "x.db", "--to", "x.db"}, wantCode: cmdutil.ExitUsage, wantErr: "same store"},
		{name: "positional", args: []string{"a", "b"}, wantCode: cmdutil.ExitUsage, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, _, _, _ := cmdutil.Test()
			var got *MigrateOptions
			cmd := NewCmdMigrate(cmdutil.NewFactory(ios), func(_ context.Context, o *MigrateOptions) error { got = o; return nil })
			err := cmdtest.RunCmd(cmd, ios, tt.args...)
			if code := cmdutil.ExitCode(err); code != tt.wantCode {
				t.Fatalf("exit %d (%v), want %d", code, err, tt.wantCode)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			tt.want.IO = ios
			if *got != tt.want {
				t.Errorf("options %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestStoreMigrateRun(t *testing.T) {
	dir := t.TempDir()
	from, to := "sqlite://"+filepath.Join(dir, "a.db"), "sqlite://"+filepath.Join(dir, "b.db")
	ios, _, _, errOut := cmdutil.Test()
	ctx := context.Background()
	st, err := cmdutil.OpenStore(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, &regstore.User{Username: "alice", PasswordHash: cmdtest.TestHash}); err != nil {
		t.Fatal(err)
	}
	st.Close(ctx)
	o := &MigrateOptions{IO: ios, From: from, To: to}
	for i, want := range []string{"Users: 1 created, 0 updated, 0 unchanged\n  created: alice\nRules: 0 rule(s), already identical\nVerified:",
		"Users: 0 created, 0 updated, 1 unchanged\nRules: 0 rule(s), already identical\nVerified:"} {
		errOut.Reset()
		if err := migrateRun(ctx, o); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if !strings.HasPrefix(errOut.String(), want) {
			t.Errorf("run %d printed %q, want prefix %q", i, errOut.String(), want)
		}
	}
}
