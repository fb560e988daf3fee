package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/doctor"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/render"
)

func TestNewCmdDoctorFlags(t *testing.T) {
	p := provExample(t, "")
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		check    func(t *testing.T, o *DoctorOptions)
	}{
		{"defaults", []string{"--config", p}, 0, func(t *testing.T, o *DoctorOptions) {
			if o.Output != cmdutil.FormatTable || o.Env.Config.Root != "/opt/regctl" || o.Env.ConfigPath != p {
				t.Errorf("options %+v", o)
			}
			// The managed MongoDB is not reachable from the host.
			if o.Env.Store != nil || !strings.Contains(o.Env.StoreNote, "--store") {
				t.Errorf("store %v, note %q", o.Env.Store != nil, o.Env.StoreNote)
			}
			if o.Env.LookupHost == nil || o.Env.HostAddrs == nil || o.Env.Runner == nil || o.Env.Now == nil {
				t.Error("a probe is missing")
			}
		}},
		{"json and root", []string{"--config", p, "-o", "json", "--root", "/srv/regctl"}, 0, func(t *testing.T, o *DoctorOptions) {
			if o.Output != cmdutil.FormatJSON || o.Env.Config.Root != "/srv/regctl" {
				t.Errorf("options %+v", o)
			}
		}},
		{"store flag", []string{"--config", p, "--store", "sqlite:///tmp/x.db"}, 0, func(t *testing.T, o *DoctorOptions) {
			if o.Env.Store == nil {
				t.Error("--store ignored")
			}
		}},
		{"bad output", []string{"--config", p, "-o", "yaml"}, cmdutil.ExitUsage, nil},
		{"bad root", []string{"--config", p, "--root", "/srv/my root"}, cmdutil.ExitUsage, nil},
		{"extra argument", []string{"--config", p, "now"}, cmdutil.ExitUsage, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got *DoctorOptions
			code, _, stderr := provCmd(t, append([]string{"doctor"}, tt.args...), func(f *cmdutil.Factory) *cobra.Command {
				return NewCmdDoctor(f, func(_ context.Context, o *DoctorOptions) error { got = o; return nil })
			})
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tt.wantCode, stderr)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// doctorFakes replaces the probes: names resolve here, ufw and fail2ban
// are fine, the store is the embedded one below the root.
func doctorFakes(o *DoctorOptions) {
	o.Env.LookupHost = func(context.Context, string) ([]string, error) { return []string{"192.0.2.10"}, nil }
	o.Env.HostAddrs = func() ([]net.IP, error) { return []net.IP{net.ParseIP("192.0.2.10")}, nil }
	o.Env.Runner = doctorRunner{}
}

type doctorRunner struct{}

func (doctorRunner) Query(_ context.Context, name string, _ ...string) ([]byte, error) {
	switch name {
	case "ufw":
		return []byte("Status: active\nDefault: deny (incoming), allow (outgoing)\n\n22/tcp ALLOW IN Anywhere\n80/tcp ALLOW IN Anywhere\n443/tcp ALLOW IN Anywhere\n"), nil
	case "fail2ban-client":
		return []byte("Status for the jail: regctl-auth\n   |- Currently banned:\t0\n"), nil
	}
	return nil, errors.New("unexpected command " + name)
}

// TestDoctorCommand renders a deployment with regctl render and checks it
// with regctl doctor: the table, the JSON, and the exit status.
func TestDoctorCommand(t *testing.T) {
	p := provExample(t, "")
	data := strings.Replace(provRead(t, p), "  backend: mongo\n", "  backend: sqlite\n", 1)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	build, _ := provRenderWith()
	if code, _, stderr := provCmd(t, []string{"render", "--config", p, "--out", root}, build); code != 0 {
		t.Fatalf("render: exit %d: %s", code, stderr)
	}
	doctorCmd := func(f *cmdutil.Factory) *cobra.Command {
		return NewCmdDoctor(f, func(ctx context.Context, o *DoctorOptions) error {
			doctorFakes(o)
			return doctorRun(ctx, o)
		})
	}

	// No certificates yet and no database: errors, exit 1.
	code, stdout, stderr := provCmd(t, []string{"doctor", "--config", p, "--root", root}, doctorCmd)
	if code != cmdutil.ExitError {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if !strings.HasPrefix(lines[0], "CHECK") || !strings.Contains(lines[0], "STATUS") || !strings.Contains(lines[0], "FINDING") || !strings.Contains(lines[0], "FIX") {
		t.Errorf("header %q", lines[0])
	}
	for _, want := range []string{"tls-cert", "ERROR", "regctl certs obtain registry.test --config " + p, "signing-cert", "compose-ports", "only nginx publishes"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, root+": ") || !strings.Contains(stderr, "error") {
		t.Errorf("summary: %s", stderr)
	}

	// Certificates and the database in place: warnings only, exit 0.
	for _, name := range []string{"registry.test", "auth.test"} {
		crt, key, err := provision.SelfSigned([]string{name}, time.Now(), 90*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, filepath.FromSlash(render.LiveDir), name)
		os.MkdirAll(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "fullchain.pem"), crt, 0o600)
		os.WriteFile(filepath.Join(dir, "privkey.pem"), key, 0o600)
	}
	st := openSQLiteAt(t, filepath.Join(root, filepath.FromSlash(render.SQLiteDataDir), "regctl.db"))
	st.Close(context.Background())

	code, stdout, stderr = provCmd(t, []string{"doctor", "--config", p, "--root", root, "-o", "json"}, doctorCmd)
	if code != cmdutil.ExitOK {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, stdout, stderr)
	}
	var fs []doctor.Finding
	var raw []map[string]string
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout)
	}
	for _, r := range raw {
		fs = append(fs, doctor.Finding{Check: r["check"], Message: r["message"], Fix: r["fix"]})
		switch r["status"] {
		case "OK", "SKIP":
		case "WARN":
			if r["check"] != doctor.CheckTLS {
				t.Errorf("unexpected warning: %v", r)
			}
		default:
			t.Errorf("unexpected finding: %v", r)
		}
	}
	if len(fs) < 13 {
		t.Errorf("%d findings", len(fs))
	}

	// A rotation is reported; a world-readable key is an error naming it.
	if _, err := keys.Rotate(filepath.Join(root, "keys"), time.Now()); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(root, "keys", keys.SigningKeyFile), 0o644)
	code, stdout, _ = provCmd(t, []string{"doctor", "--config", p, "--root", root}, doctorCmd)
	if code != cmdutil.ExitError || !strings.Contains(stdout, "chmod 600 "+filepath.Join(root, "keys", keys.SigningKeyFile)) {
		t.Errorf("world-readable signing key: exit %d\n%s", code, stdout)
	}
}

func openSQLiteAt(t *testing.T, p string) interface{ Close(context.Context) error } {
	t.Helper()
	st, err := cmdutil.OpenStore(cmdtest.Ctx(t), "sqlite://"+p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
