package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
)

// Fault tests: `regctl render` on a full disk or into a read-only
// directory. Whatever fails, every file below the root is either its old
// version, byte for byte, or (for files replaced before the fault) the new
// one, never a mixture or a truncated file; no temporary file is left
// behind; the error names the file; and once the fault is gone a render
// completes.

// faultConfig is a configuration to render into root; v selects one of two
// versions that differ in nginx.conf, the registry's and the token
// server's configuration.
func faultConfig(root string, v int) *config.Config {
	c := config.Defaults()
	c.Root = root
	c.Domains.Registry = "registry.test"
	c.Database.Backend = config.BackendSQLite
	if v >= 2 {
		c.TLS.Profile = config.ProfileIntermediate
		c.Token.Lifetime = 10 * time.Minute
		c.Token.Issuer = "regctl-v2"
	}
	if v == 3 {
		c.TLS.HSTSMaxAge = 0
		c.Token.Issuer = "regctl-v3"
	}
	return &c
}

// renderTree renders c through h as `regctl render` does (secrets once,
// then the files) and returns the error of the first failing step.
func renderTree(h Host, c *config.Config) (*Result, error) {
	now := func() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC) }
	if _, err := EnsureSecrets(h, c, now()); err != nil {
		return nil, err
	}
	s, err := LoadSecrets(h, c)
	if err != nil {
		return nil, err
	}
	files, err := render.Files(c, s, render.Env{BinaryPath: "/usr/local/bin/regctl", Binary: []byte("regctl binary")})
	if err != nil {
		return nil, err
	}
	sy := &Syncer{Host: h, Root: c.Root, Now: now}
	p, err := sy.Plan(files)
	if err != nil {
		return nil, err
	}
	return sy.Apply(context.Background(), p, ApplyOptions{})
}

// snapshot reads every file below root: path -> content (directories as
// "dir", symlinks as "link").
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			out[rel] = "link"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTrees checks that every file of before is in after with the same
// content, or with the content of want (the new render) when allowNew, and
// that after holds nothing else.
func compareTrees(t *testing.T, before, after, want map[string]string, allowNew bool) (replaced []string) {
	t.Helper()
	var extra []string
	for p, a := range after {
		b, ok := before[p]
		switch {
		case p == filepath.FromSlash(render.ManifestFile):
			// regctl's record of what it wrote: it follows the files
			// replaced before the fault; it must stay readable.
			var m Manifest
			if err := json.Unmarshal([]byte(a), &m); err != nil || len(m.Files) == 0 {
				t.Errorf("manifest after the fault: %v", err)
			}
		case ok && a == b:
		case allowNew && want[p] == a:
			replaced = append(replaced, p)
		case !ok && a == "dir" && (p == filepath.FromSlash(render.BackupDir) || strings.HasPrefix(p, filepath.FromSlash(render.BackupDir)+string(filepath.Separator))):
			// The backup directory of the failed render, created before
			// the first write failed: empty, harmless, and reused.
		case !ok:
			extra = append(extra, p)
		default:
			t.Errorf("%s changed to something that is neither its old nor its new version (%d bytes, was %d)", p, len(a), len(b))
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s disappeared", p)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		t.Errorf("left behind: %v", extra)
	}
	sort.Strings(replaced)
	return replaced
}

// faultHost fails the first WriteFile whose path ends with failOn (or every
// write, and every Mkdir, once failAll is set) with err, as the kernel would.
type faultHost struct {
	Host
	failOn  string
	notIn   string // with failOn: paths containing this are written
	failAll bool
	err     error
	failed  []string
}

// The errors read like ExecHost's.
func (h *faultHost) WriteFile(p string, data []byte, mode fs.FileMode) error {
	if h.failAll || h.failOn != "" && strings.HasSuffix(p, h.failOn) && (h.notIn == "" || !strings.Contains(p, h.notIn)) {
		h.failed = append(h.failed, p)
		return fmt.Errorf("write %s: %w", p, h.err)
	}
	return h.Host.WriteFile(p, data, mode)
}

func (h *faultHost) Mkdir(p string, mode fs.FileMode) error {
	if h.failAll {
		h.failed = append(h.failed, p)
		return fmt.Errorf("create directory %s: %w", p, h.err)
	}
	return h.Host.Mkdir(p, mode)
}

// TestRenderFaultInjected fails one write in the middle of a render (the
// disk fills up after some files were replaced) and every write (a
// read-only file system), through the Host interface.
func TestRenderFaultInjected(t *testing.T) {
	for _, tt := range []struct {
		name    string
		failOn  string // "" with failAll
		notIn   string
		failAll bool
		errno   error
	}{
		{"disk fills at the backup of the token server config", render.TokenConfFile, "", false, syscall.ENOSPC},
		{"disk fills at the token server config", render.TokenConfFile, "/.regctl/", false, syscall.ENOSPC},
		{"disk fills at the registry config", render.RegistryConfFile, "/.regctl/", false, syscall.ENOSPC},
		{"read-only token directory", render.TokenConfFile, "/.regctl/", false, syscall.EROFS},
		{"disk fills at the manifest", render.ManifestFile, "", false, syscall.ENOSPC},
		{"disk full from the start", "", "", true, syscall.ENOSPC},
		{"read-only file system", "", "", true, syscall.EROFS},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			execHost := noChownHost{NewExecHost(root, nil)}
			if _, err := renderTree(execHost, faultConfig(root, 1)); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, root)
			// What a successful v2 render writes, for comparison.
			wantRoot := filepath.Join(t.TempDir(), "want")
			copyTree(t, root, wantRoot)
			if _, err := renderTree(noChownHost{NewExecHost(wantRoot, nil)}, faultConfig(wantRoot, 2)); err != nil {
				t.Fatal(err)
			}
			want := snapshot(t, wantRoot)

			fh := &faultHost{Host: execHost, failOn: tt.failOn, notIn: tt.notIn, failAll: tt.failAll, err: tt.errno}
			_, err := renderTree(fh, faultConfig(root, 2))
			if err == nil || !errors.Is(err, tt.errno) {
				t.Fatalf("render with %v: %v", tt.errno, err)
			}
			if len(fh.failed) == 0 || !strings.Contains(err.Error(), fh.failed[0]) {
				t.Errorf("the error does not name the file that failed (%v): %v", fh.failed, err)
			}
			replaced := compareTrees(t, before, snapshot(t, root), want, !tt.failAll)
			if tt.failAll && len(replaced) > 0 {
				t.Errorf("files replaced although every write failed: %v", replaced)
			}
			if tt.failOn != "" {
				if got := snapshot(t, root)[filepath.FromSlash(tt.failOn)]; got != before[filepath.FromSlash(tt.failOn)] {
					t.Errorf("%s is not its old version", tt.failOn)
				}
			}
			t.Logf("error: %v; replaced before the fault: %v", err, replaced)

			// Files replaced before the fault are in the manifest: a render
			// of yet another configuration does not take them for hand
			// edits (unless the manifest could not be written either).
			if tt.failOn != "" && tt.notIn != "" {
				if _, err := renderTree(execHost, faultConfig(root, 3)); err != nil {
					t.Fatalf("render of a new configuration after the fault: %v", err)
				}
			}
			// The fault is gone: the next render completes.
			if _, err := renderTree(execHost, faultConfig(root, 2)); err != nil {
				t.Fatalf("render after the fault: %v", err)
			}
			after := snapshot(t, root)
			for _, p := range []string{render.NginxConfFile, render.RegistryConfFile, render.TokenConfFile} {
				if after[filepath.FromSlash(p)] != want[filepath.FromSlash(p)] {
					t.Errorf("%s is not the new version after recovery", p)
				}
			}
		})
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// faultChildEnv marks the re-executed test process that runs inside its
// own mount namespace.
const faultChildEnv = "REGCTL_FAULT_TEST_CHILD"

// TestRenderFaultRealFS renders onto a real full file system (a 512 KiB
// tmpfs filled up) and a real read-only one (a read-only bind mount), which
// even root cannot write. It needs root and unshare(1): the test re-runs
// itself in a private mount namespace, so nothing is mounted outside it.
func TestRenderFaultRealFS(t *testing.T) {
	if os.Getenv(faultChildEnv) == "1" {
		faultChild(t)
		return
	}
	skip := func(msg string) {
		if os.Getenv("REGCTL_TEST_REQUIRE") == "1" {
			t.Fatalf("%s; REGCTL_TEST_REQUIRE=1 forbids skipping", msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		skip("needs root to mount a tmpfs in a private mount namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		skip("unshare(1) not found (util-linux)")
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", os.Args[0],
		"-test.run", "^TestRenderFaultRealFS$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), faultChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child in a private mount namespace:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestRenderFaultRealFS")) {
		t.Fatal("the child did not run the test")
	}
}

func faultChild(t *testing.T) {
	mnt := t.TempDir()
	mount := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v\n%s", args, err, out)
		}
	}
	mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	root := filepath.Join(mnt, "root")
	h := NewExecHost(root, nil)
	if _, err := renderTree(h, faultConfig(root, 1)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)

	// Fill the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	f.Close()

	_, err = renderTree(h, faultConfig(root, 2))
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), root+"/") {
		t.Fatalf("render on a full disk: %v, want ENOSPC naming a file below %s", err, root)
	}
	t.Logf("full disk: %v", err)
	compareTrees(t, before, snapshot(t, root), nil, false)

	// Space again: the render completes.
	os.Remove(filler)
	if _, err := renderTree(h, faultConfig(root, 2)); err != nil {
		t.Fatalf("render after freeing space: %v", err)
	}
	v2 := snapshot(t, root)
	if v2[filepath.FromSlash(render.TokenConfFile)] == before[filepath.FromSlash(render.TokenConfFile)] {
		t.Fatal("the second render changed nothing")
	}

	// Read-only: root cannot write either.
	mount("--bind", root, root)
	mount("-o", "remount,bind,ro", root)
	_, err = renderTree(h, faultConfig(root, 1))
	if err == nil || !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), root+"/") {
		t.Fatalf("render into a read-only directory: %v, want EROFS naming a file below %s", err, root)
	}
	t.Logf("read-only: %v", err)
	compareTrees(t, v2, snapshot(t, root), nil, false)
}
