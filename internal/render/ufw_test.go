package render_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/testenv"
)

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestUFWScript runs the rendered script with UFW="ufw --dry-run" and
// checks the rules ufw prints, in order. Debian's ufw writes ENABLED=yes to
// /etc/ufw/ufw.conf even for `ufw --dry-run enable`, so the script runs in
// a private mount namespace over copies of /etc/ufw and /etc/default/ufw:
// the host's firewall configuration is never touched.
func TestUFWScript(t *testing.T) {
	testenv.RequireBinary(t, "", "ufw", "Debian's ufw (apt-get install -y ufw)")
	unshare := testenv.RequireBinary(t, "", "unshare", "util-linux")
	if os.Geteuid() != 0 {
		if os.Getenv(testenv.EnvRequire) == "1" {
			t.Fatal("ufw needs root")
		}
		t.Skip("ufw needs root")
	}
	c := variants[0].config(t)
	c.SSH.Port = 2222
	script, err := render.Execute("ufw.sh.tmpl", render.UFWData{SSHPort: c.SSH.Port})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sp := filepath.Join(dir, "ufw.sh")
	writeFile(t, sp, script, 0o755)
	testenv.MustRun(t, nil, "", "cp", "-a", "/etc/ufw", filepath.Join(dir, "etc-ufw"))
	testenv.MustRun(t, nil, "", "cp", "-a", "/etc/default/ufw", filepath.Join(dir, "default-ufw"))
	before := fileSum(t, "/etc/ufw/ufw.conf")

	r := testenv.MustRun(t, nil, "", unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/ufw && mount --bind "$2" /etc/default/ufw && UFW="ufw --dry-run" exec sh "$3"`,
		"sh", filepath.Join(dir, "etc-ufw"), filepath.Join(dir, "default-ufw"), sp)

	if fileSum(t, "/etc/ufw/ufw.conf") != before {
		t.Fatal("the test changed the host's /etc/ufw/ufw.conf")
	}
	out := r.Stdout + r.Stderr
	steps := []string{
		"### tuple ### allow tcp 2222 0.0.0.0/0 any 0.0.0.0/0 in",
		"### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in",
		"### tuple ### allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in",
		"Default incoming policy changed to 'deny'",
		"Default outgoing policy changed to 'allow'",
		"Firewall is active and enabled on system startup",
	}
	pos := 0
	for _, s := range steps {
		i := strings.Index(out[pos:], s)
		if i < 0 {
			t.Fatalf("ufw --dry-run output lacks %q after position %d (SSH first, then 80, 443, default deny, enable last):\n%s", s, pos, out)
		}
		pos += i + len(s)
	}
	if strings.Contains(out[pos:], "### tuple ###") {
		t.Errorf("rules after `ufw enable`:\n%s", out[pos:])
	}
	for _, port := range []string{"2222", "80", "443"} {
		if !strings.Contains(out, "-A ufw-user-input -p tcp --dport "+port+" -j ACCEPT") {
			t.Errorf("no iptables rule for port %s", port)
		}
	}
}
