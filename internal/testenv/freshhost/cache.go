package freshhost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// Image names inside the tarballs of Artifacts.Images, as `docker load`
// tags them.
const (
	// NginxImage: Debian trixie's nginx and wget on a minbase rootfs;
	// CMD nginx -g "daemon off;". /etc/nginx is Debian's, for regctl's
	// compose file to replace; /var/cache/nginx exists.
	NginxImage = "regctl-test/nginx:trixie"
	// RegistryImage: distribution v3.1.2, static, laid out like the
	// official registry image: /bin/registry, /etc/distribution/config.yml,
	// ENTRYPOINT /entrypoint.sh (a .yml/.yaml argument is served, a
	// registry subcommand or flag goes to registry, anything else runs as
	// is), CMD /etc/distribution/config.yml; busybox provides sh and wget.
	RegistryImage = "regctl-test/registry:3.1.2"
	// FerretDBImage: FerretDB v1.24.2, static, SQLite backend with its
	// state in /state, listening on :27017; ENTRYPOINT /ferretdb; busybox
	// provides sh and wget.
	FerretDBImage = "regctl-test/ferretdb:1.24.2"
)

// Environment variables of the package (besides testenv's).
const (
	// EnvFreshHost: "0" skips every fresh-host test, even with
	// REGCTL_TEST_REQUIRE=1 (for a quick `make test-all` on a laptop).
	EnvFreshHost = "REGCTL_TEST_FRESHHOST"
	// EnvCache: the cache root shared with scripts/test-deps.sh; the
	// fresh-host artifacts live in its subdirectory freshhost.
	EnvCache = "REGCTL_TEST_CACHE"
)

// BuildTimeout bounds scripts/freshhost-build.sh (a cold build takes
// minutes; a warm one, less than a second).
const BuildTimeout = 30 * time.Minute

// Artifacts are the cached build outputs (paths on the test machine).
type Artifacts struct {
	RootfsBare string // rootfs of Variant Bare
	RootfsFull string // rootfs of Variant Full
	Repo       string // flat apt repository (Packages.gz), see Options.MountRepo
	Images     Images
	// RegistryBin is the static distribution v3.1.2 of the registry
	// image, which Host.Mirror runs on the test machine.
	RegistryBin string
}

// Images are docker-archive tarballs, for Host.LoadImages or `docker load`.
type Images struct {
	Nginx    string // NginxImage
	Registry string // RegistryImage
	FerretDB string // FerretDBImage
}

// All returns every tarball.
func (i Images) All() []string { return []string{i.Nginx, i.Registry, i.FerretDB} }

var built struct {
	once sync.Once
	a    *Artifacts
	err  error
	log  string
}

// Cache returns the cached artifacts, building what is missing by running
// scripts/freshhost-build.sh (once per test process; its progress and
// timings are logged). It skips or fails the test like testenv.Require when
// the machine lacks what the fresh-host tests need.
func Cache(t testing.TB) *Artifacts {
	t.Helper()
	RequireMachine(t)
	built.once.Do(func() { built.a, built.log, built.err = build() })
	if built.err != nil {
		t.Fatalf("freshhost: build the cache: %v\n%s", built.err, built.log)
	}
	if built.log != "" {
		t.Logf("freshhost: scripts/freshhost-build.sh:\n%s", built.log)
	}
	return built.a
}

func build() (*Artifacts, string, error) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		return nil, "", err
	}
	script := filepath.Join(root, "scripts", "freshhost-build.sh")
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	// Progress shows as it happens (a cold build is long) and in the log.
	cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	start := time.Now()
	err = cmd.Run()
	log := stderr.String()
	if err != nil {
		return nil, log, fmt.Errorf("%s: %w", script, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		log += fmt.Sprintf("(build took %s)\n", took.Round(time.Second))
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	a := &Artifacts{
		RootfsBare: vars["FRESHHOST_ROOTFS_BARE"],
		RootfsFull: vars["FRESHHOST_ROOTFS_FULL"],
		Repo:       vars["FRESHHOST_REPO"],
		Images: Images{
			Nginx:    vars["FRESHHOST_IMAGE_NGINX"],
			Registry: vars["FRESHHOST_IMAGE_REGISTRY"],
			FerretDB: vars["FRESHHOST_IMAGE_FERRETDB"],
		},
		RegistryBin: vars["FRESHHOST_REGISTRY_BIN"],
	}
	for _, p := range append([]string{a.RootfsBare, a.RootfsFull, a.Repo, a.RegistryBin}, a.Images.All()...) {
		if p == "" {
			return nil, log, fmt.Errorf("%s printed no path for every artifact:\n%s", script, stdout.String())
		}
		if _, err := os.Stat(p); err != nil {
			return nil, log, fmt.Errorf("%s: %w", script, err)
		}
	}
	return a, log, nil
}

// CacheDir is where the artifacts live: $REGCTL_TEST_CACHE/freshhost or
// ~/.cache/regctl-test/freshhost. Deleting it forces a cold build.
func CacheDir() string {
	base := os.Getenv(EnvCache)
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache", "regctl-test")
	}
	return filepath.Join(base, "freshhost")
}

// Tools the harness runs on the test machine, and what provides them.
var tools = []struct{ name, pkg string }{
	{"systemd-nspawn", "systemd-container"},
	{"nsenter", "util-linux"},
	{"unshare", "util-linux"},
	{"ip", "iproute2"},
	{"debootstrap", "debootstrap"},
	{"dpkg-scanpackages", "dpkg-dev"},
	{"go", "Go"},
}

// RequireMachine skips the test (or fails it with REGCTL_TEST_REQUIRE=1)
// unless this machine can boot fresh hosts: Linux, root, cgroup2 and the
// tools scripts/freshhost-deps.sh installs. REGCTL_TEST_FRESHHOST=0 skips
// regardless.
func RequireMachine(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvFreshHost) == "0" {
		t.Skipf("%s=0: fresh-host tests skipped", EnvFreshHost)
	}
	var missing []string
	if runtime.GOOS != "linux" {
		missing = append(missing, "Linux")
	} else {
		if os.Geteuid() != 0 {
			missing = append(missing, "root")
		}
		if _, err := cgroup2Root(); err != nil {
			missing = append(missing, err.Error())
		}
		for _, tool := range tools {
			if _, err := exec.LookPath(tool.name); err != nil {
				missing = append(missing, fmt.Sprintf("%s (%s)", tool.name, tool.pkg))
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "fresh-host tests need " + strings.Join(missing, ", ") + " (run scripts/freshhost-deps.sh as root)"
	if os.Getenv(testenv.EnvRequire) == "1" {
		t.Fatalf("%s; %s=1 forbids skipping", msg, testenv.EnvRequire)
	}
	t.Skip(msg)
}

// cgroup2Root returns where the cgroup2 hierarchy is mounted
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid machine).
func cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if f := strings.Fields(post); len(f) > 0 && f[0] == "cgroup2" {
			if g := strings.Fields(pre); len(g) >= 5 {
				return unescapeMount(g[4]), nil
			}
		}
	}
	return "", errors.New("a mounted cgroup2 hierarchy")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
