//go:build integration

package render_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/testenv"
)

// ubuntuLogrotateConf is the global part of Ubuntu 22.04's and 24.04's
// /etc/logrotate.conf (its `include /etc/logrotate.d` left out), which
// applies to the installed rule: `su root adm` and `create` among them.
// Debian's is the same without the su line.
const ubuntuLogrotateConf = `weekly
su root adm
rotate 4
create
`

// logrotateRoot renders the rule for c with the install root moved to a
// new temporary directory, and writes it there. It returns the root and
// the rule's path.
func logrotateRoot(t *testing.T, c *config.Config) (root, rule string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	cc := *c
	cc.Root = root
	if err := cc.Validate(); err != nil {
		t.Fatalf("install root %s: %v", root, err)
	}
	b, err := render.Execute("logrotate.conf.tmpl", render.NewLogrotateData(&cc))
	if err != nil {
		t.Fatal(err)
	}
	// logrotate, as root, ignores a rule that group or others may write.
	rule = filepath.Join(dir, "regctl")
	writeFile(t, rule, b, 0o644)
	mustChmod(t, rule, 0o644)
	return root, rule
}

func mustChmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// logrotateRun runs logrotate with a state file of its own (never the
// host's /var/lib/logrotate/status) on the given configuration files, and
// fails the test unless it exits 0 without an error message.
func logrotateRun(t *testing.T, bin, state string, args ...string) string {
	t.Helper()
	r := testenv.Run(t, nil, "", bin, append([]string{"-s", state}, args...)...)
	out := r.Output()
	if r.Code != 0 || strings.Contains(out, "error:") {
		t.Fatalf("logrotate %s: exit %d\n%s", strings.Join(args, " "), r.Code, out)
	}
	return out
}

// TestLogrotateDebug checks the rendered rule with `logrotate --debug`
// (which only reads) on a fresh install root, where no log exists yet:
// logrotate accepts the rule and considers each of the stack's logs.
//
//	go test -tags integration -run TestLogrotate ./internal/render
func TestLogrotateDebug(t *testing.T) {
	bin := testenv.RequireBinary(t, "", "logrotate", "Debian's logrotate (apt-get install -y logrotate)")
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			root, rule := logrotateRoot(t, v.config(t))
			state := filepath.Join(t.TempDir(), "status")
			out := logrotateRun(t, bin, state, "--debug", rule)
			for _, log := range []string{render.AuthLogFile, render.AuditLogFile, render.RenewLogFile} {
				if !strings.Contains(out, "considering log "+filepath.Join(root, log)+"\n") {
					t.Errorf("logrotate --debug does not consider %s:\n%s", log, out)
				}
			}
			if _, err := os.Stat(state); err == nil {
				t.Errorf("logrotate --debug wrote its state file")
			}
		})
	}
}

// TestLogrotateRotates runs a real, forced rotation (logrotate -f with a
// state file of its own) twice over an install root laid out as init lays
// it out, while a writer holds the audit log open for appending as regctl
// serve does. The rotated copies hold what was written and keep the
// original's mode (0600 for the audit log, also once compressed); the
// originals stay in place, truncated, and the writer's next line goes to
// their start. It runs on the rule alone and under Ubuntu's
// /etc/logrotate.conf, whose global `create` and `su root adm` then apply.
func TestLogrotateRotates(t *testing.T) {
	bin := testenv.RequireBinary(t, "", "logrotate", "Debian's logrotate (apt-get install -y logrotate)")
	for _, tt := range []struct {
		name    string
		globals string
	}{
		{"rule-alone", ""},
		{"ubuntu-logrotate.conf", ubuntuLogrotateConf},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.globals, "su root adm") {
				if os.Geteuid() != 0 {
					t.Skip("`su root adm` needs root")
				}
				if _, err := user.LookupGroup("adm"); err != nil {
					t.Skipf("no group adm: %v", err)
				}
			}
			root, rule := logrotateRoot(t, variants[0].config(t))
			// The directories and files as regctl init and the containers
			// leave them; renew.log exists only where cron runs the renewal.
			for _, d := range []struct {
				rel  string
				mode os.FileMode
			}{{render.LogDir, 0o755}, {render.NginxLogDir, 0o755}, {render.TokenLogDir, 0o700}} {
				if err := os.MkdirAll(filepath.Join(root, d.rel), d.mode); err != nil {
					t.Fatal(err)
				}
				mustChmod(t, filepath.Join(root, d.rel), d.mode)
			}
			auth := filepath.Join(root, render.AuthLogFile)
			audit := filepath.Join(root, render.AuditLogFile)
			renew := filepath.Join(root, render.RenewLogFile)
			authLines := "2026-01-02T03:04:05+00:00 regctl-auth client=203.0.113.7 method=GET uri=\"/auth/token\" status=401 host=r ua=\"docker\" rt=0.001\n"
			auditLines := `{"time":"2026-01-02T03:04:05Z","user":"waldi","client_ip":"203.0.113.7","result":"unauthorized","status":401}` + "\n"
			writeFile(t, auth, []byte(authLines), 0o644)
			mustChmod(t, auth, 0o644)
			writeFile(t, audit, []byte(auditLines), 0o600)
			mustChmod(t, audit, 0o600)
			writeFile(t, renew, nil, 0o644) // empty: notifempty leaves it alone
			authIno, auditIno := inode(t, auth), inode(t, audit)

			// regctl serve's writer: O_APPEND, kept open across rotations.
			w, err := os.OpenFile(audit, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()

			conf := []string{rule}
			if tt.globals != "" {
				globals := filepath.Join(filepath.Dir(rule), "logrotate.conf")
				writeFile(t, globals, []byte(tt.globals), 0o644)
				mustChmod(t, globals, 0o644)
				conf = []string{globals, rule}
			}
			state := filepath.Join(t.TempDir(), "status")
			logrotateRun(t, bin, state, append([]string{"-v", "-f"}, conf...)...)

			wantFile(t, auth+".1", authLines, 0o644)
			wantFile(t, audit+".1", auditLines, 0o600)
			wantFile(t, auth, "", 0o644)
			wantFile(t, audit, "", 0o600)
			if inode(t, auth) != authIno || inode(t, audit) != auditIno {
				t.Errorf("the logs were replaced, not truncated in place: the writers would go on writing to the copies")
			}
			wantFile(t, renew, "", 0o644)
			if _, err := os.Stat(renew + ".1"); err == nil {
				t.Errorf("the empty %s was rotated (notifempty)", render.RenewLogFile)
			}
			if _, err := os.Stat(audit + ".1.gz"); err == nil {
				t.Errorf("the newest copy was compressed at once (delaycompress: a writer may still be finishing a line)")
			}

			// The open writer's next line lands at the start of the
			// truncated file, with no hole before it.
			next := strings.Replace(auditLines, "waldi", "bob", 1)
			if _, err := w.WriteString(next); err != nil {
				t.Fatal(err)
			}
			wantFile(t, audit, next, 0o600)

			// A second rotation compresses the first copy, still 0600.
			logrotateRun(t, bin, state, append([]string{"-v", "-f"}, conf...)...)
			wantFile(t, audit+".1", next, 0o600)
			wantGzip(t, audit+".2.gz", auditLines, 0o600)
			wantFile(t, audit, "", 0o600)
			if entries, err := os.ReadDir(filepath.Join(root, render.TokenLogDir)); err != nil || len(entries) != 3 {
				t.Errorf("%s holds %v (%v), want audit.log, audit.log.1 and audit.log.2.gz", render.TokenLogDir, entries, err)
			}
			if fi, err := os.Stat(filepath.Join(root, render.TokenLogDir)); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, %v; want mode 0700", render.TokenLogDir, fi, err)
			}
		})
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// wantFile checks a file's content and permission bits.
func wantFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if string(b) != content {
		t.Errorf("%s holds %q, want %q", p, b, content)
	}
	wantMode(t, p, mode)
}

func wantGzip(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	plain, err := io.ReadAll(zr)
	if err != nil || string(plain) != content {
		t.Errorf("%s holds %q (%v), want %q", p, plain, err, content)
	}
	wantMode(t, p, mode)
}

func wantMode(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), mode)
	}
}
