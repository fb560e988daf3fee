package provision

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"

	"github.com/regctl/regctl/internal/atomicfile"
)

// ExecHost acts on the real machine. Paths below Root go through os.Root,
// so a symlink that leads out of the root is refused rather than followed;
// other paths (/etc/fail2ban, /etc/cron.d) are used as they are.
type ExecHost struct {
	// Root confines every path below it; empty confines nothing.
	Root string
	// Out, if set, receives the output of Run commands as they run.
	Out io.Writer
	// Live, if set, shows a live line for each Run command instead (see
	// Live); the output's end is in the CmdError when it fails.
	Live *Live
	// Env is added to every command's environment.
	Env []string
}

var _ Host = (*ExecHost)(nil)

// NewExecHost returns a host that acts for real, confining paths below
// root. Commands run with DEBIAN_FRONTEND=noninteractive.
func NewExecHost(root string, out io.Writer) *ExecHost {
	return &ExecHost{Root: filepath.Clean(root), Out: out, Env: []string{"DEBIAN_FRONTEND=noninteractive"}}
}

// Query runs a read-only command and returns its standard output.
func (h *ExecHost) Query(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), h.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CmdError{Args: append([]string{name}, args...), Output: tail(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

// Run runs a command that changes the host.
func (h *ExecHost) Run(ctx context.Context, name string, args ...string) error {
	return h.RunInput(ctx, nil, name, args...)
}

// RunInput runs a command with stdin (which is never printed).
func (h *ExecHost) RunInput(ctx context.Context, stdin []byte, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), h.Env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	var w io.Writer = &out
	switch {
	case h.Live != nil:
		lc := h.Live.Command(append([]string{name}, args...))
		defer lc.Done()
		w = io.MultiWriter(&out, lc)
	case h.Out != nil:
		w = io.MultiWriter(&out, h.Out)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return &CmdError{Args: append([]string{name}, args...), Output: tail(out.String()), Err: err}
	}
	return nil
}

// tail keeps the last 4 KiB of s.
func tail(s string) string {
	if len(s) > 4096 {
		s = "…" + s[len(s)-4096:]
	}
	return s
}

// confined splits p into the root and the path below it, or reports that
// p is outside the root.
func (h *ExecHost) confined(p string) (rel string, ok bool) {
	if h.Root == "" || !filepath.IsAbs(p) {
		return "", false
	}
	p = filepath.Clean(p)
	if p == h.Root {
		return ".", true
	}
	if strings.HasPrefix(p, h.Root+string(filepath.Separator)) {
		return p[len(h.Root)+1:], true
	}
	return "", false
}

func (h *ExecHost) openRoot() (*os.Root, error) {
	r, err := os.OpenRoot(h.Root)
	if err != nil {
		return nil, fmt.Errorf("open install root: %w", err)
	}
	return r, nil
}

// ReadFile reads a file.
func (h *ExecHost) ReadFile(p string) ([]byte, error) {
	rel, ok := h.confined(p)
	if !ok {
		return os.ReadFile(p)
	}
	r, err := h.openRoot()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadFile(rel)
}

// Stat describes a file without following a final symlink.
func (h *ExecHost) Stat(p string) (fs.FileInfo, error) {
	rel, ok := h.confined(p)
	if !ok {
		return os.Lstat(p)
	}
	if _, err := os.Lstat(h.Root); err != nil {
		return nil, err
	}
	r, err := h.openRoot()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Lstat(rel)
}

// WriteFile replaces p atomically: a temporary file in the same directory,
// fsync, rename.
func (h *ExecHost) WriteFile(p string, data []byte, mode fs.FileMode) error {
	rel, ok := h.confined(p)
	if !ok {
		if err := atomicfile.Write(p, data, mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		return nil
	}
	r, err := h.openRoot()
	if err != nil {
		return err
	}
	defer r.Close()
	dir, err := r.OpenRoot(filepath.Dir(rel))
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer dir.Close()
	if err := atomicfile.Write(filepath.Base(rel), data, mode, renameio.WithRoot(dir)); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Mkdir creates p and its parents and sets p's mode.
func (h *ExecHost) Mkdir(p string, mode fs.FileMode) error {
	rel, ok := h.confined(p)
	if !ok || rel == "." {
		if err := os.MkdirAll(p, mode); err != nil {
			return fmt.Errorf("create directory %s: %w", p, err)
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("set mode of %s: %w", p, err)
		}
		return nil
	}
	r, err := h.openRoot()
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.MkdirAll(rel, ModeDirParents); err != nil {
		return fmt.Errorf("create directory %s: %w", p, err)
	}
	if err := r.Chmod(rel, mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", p, err)
	}
	return nil
}

// ModeDirParents is the mode of directories created on the way to another.
const ModeDirParents fs.FileMode = 0o755

// Chown sets the owner of p.
func (h *ExecHost) Chown(p string, uid, gid int) error {
	rel, ok := h.confined(p)
	if !ok {
		return os.Lchown(p, uid, gid)
	}
	r, err := h.openRoot()
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Lchown(rel, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}
