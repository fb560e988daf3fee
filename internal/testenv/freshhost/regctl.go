package freshhost

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var static struct {
	once sync.Once
	bin  string
	err  error
}

// staticBuildPrefix+PID is where test process PID builds regctl.
const staticBuildPrefix = "regctl-freshhost-build-"

// StaticRegctl builds ./cmd/regctl with CGO_ENABLED=0 once per test
// process and returns the binary's path, for a host to run (bind it in
// with Options.Binds): `regctl init` copies itself into a FROM scratch
// image and refuses a dynamically linked binary, which is what
// testenv.BuildRegctl makes. The build lives in $TMPDIR/regctl-freshhost-
// build-PID; a later test process removes it once this one is gone.
func StaticRegctl(t testing.TB) string {
	t.Helper()
	static.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			static.err = err
			return
		}
		removeStaleStaticBuilds()
		dir := filepath.Join(os.TempDir(), staticBuildPrefix+strconv.Itoa(os.Getpid()))
		if static.err = os.MkdirAll(dir, 0o755); static.err != nil {
			return
		}
		bin := filepath.Join(dir, "regctl")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/regctl")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			static.err = fmt.Errorf("CGO_ENABLED=0 go build ./cmd/regctl: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "freshhost: built a static regctl in %s\n", time.Since(start).Round(time.Millisecond))
		static.bin = bin
	})
	if static.err != nil {
		t.Fatalf("freshhost: %v", static.err)
	}
	return static.bin
}

func removeStaleStaticBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), staticBuildPrefix+"*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), staticBuildPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}
