package freshhost

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// StaticRegctl is testenv.BuildStaticRegctl: the regctl binary for a host
// to run (bind it in with Options.Binds). `regctl init` copies itself into
// a FROM scratch image and refuses a dynamically linked binary.
func StaticRegctl(t testing.TB) string {
	t.Helper()
	return testenv.BuildStaticRegctl(t)
}

var debBuild struct {
	once sync.Once
	deb  string
	err  error
}

// RegctlDeb builds regctl's amd64 .deb from the current tree once per test
// process, the way a release is built: `make dist` (scripts/dist.sh, nfpm,
// packaging/nfpm.yaml), so that a test installing it (dpkg -i in the host)
// tests the packaging too. It lives beside StaticRegctl's build, removed
// with it by testenv.RemoveBuilds.
//
// The build runs with GOPROXY=off, so the test reaches nothing outside:
// nfpm must be in dist.sh's cache already, which the first `make dist` on
// the machine (or scripts/test.sh's dist phase) sees to.
func RegctlDeb(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(StaticRegctl(t)), "dist")
	debBuild.once.Do(func() {
		debBuild.deb, debBuild.err = buildDeb(dir)
	})
	if debBuild.err != nil {
		t.Fatalf("build regctl's .deb: %v", debBuild.err)
	}
	return debBuild.deb
}

func buildDeb(dir string) (string, error) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("make", "-s", "dist", "DIST="+dir, "DIST_ARCHS=amd64")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v in %s: %w\n%s\n(nfpm not built yet? run make dist once, with the module proxy reachable)", cmd.Args, root, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "regctl_*_amd64.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("make dist left %d amd64 .debs in %s, want 1: %v", len(debs), dir, debs)
	}
	fmt.Fprintf(os.Stderr, "freshhost: built %s in %s\n", filepath.Base(debs[0]), time.Since(start).Round(time.Millisecond))
	return debs[0], nil
}

// WriteRegctlYAML writes RegctlYAML(name, database, extra) to the host's
// /etc/regctl/regctl.yaml (0600).
func (h *Host) WriteRegctlYAML(t testing.TB, name, database, extra string) {
	t.Helper()
	h.CopyIn(t, "/etc/regctl/regctl.yaml", []byte(RegctlYAML(name, database, extra)), 0o600)
}

// RegctlYAML is a regctl.yaml for a fresh host: name as domains.registry,
// the cached images (NginxImage, RegistryImage), database as the body of
// the database section, one key per line (e.g. "backend: sqlite"), and
// extra, whole top-level sections, appended.
func RegctlYAML(name, database, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "domains:\n  registry: %s\ndatabase:\n", name)
	for line := range strings.SplitSeq(strings.TrimSpace(database), "\n") {
		b.WriteString("  " + line + "\n")
	}
	fmt.Fprintf(&b, "images:\n  nginx: %s\n  registry: %s\n", NginxImage, RegistryImage)
	b.WriteString(extra)
	return b.String()
}
