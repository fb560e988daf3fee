package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/regctl/regctl/internal/redact"
)

// DryRunHost prints every action, with a unified diff for each file, and
// changes nothing. Queries and reads go to Base (the real host), so steps
// still check before they act; what a step would have written is kept in
// memory, so that later steps see it.
//
// The diffs show the files' contents with the values in Secrets masked;
// whoever writes a secret through the host adds it there first (see
// SecretFiles.Known and InitOptions.Secrets). Out should mask them too
// (redact.Set.Writer), for what the diffs cannot: a command line, or a
// secret that lies across two lines of a diff.
type DryRunHost struct {
	Base    Host
	Out     io.Writer
	Secrets *redact.Set

	mu    sync.Mutex
	files map[string]memFile
}

var _ Host = (*DryRunHost)(nil)

// NewDryRunHost returns a dry-run host reading from base and printing to
// out, with secrets masked in its diffs.
func NewDryRunHost(base Host, out io.Writer, secrets *redact.Set) *DryRunHost {
	return &DryRunHost{Base: base, Out: out, Secrets: secrets, files: map[string]memFile{}}
}

// Query runs on the base host: it only reads.
func (h *DryRunHost) Query(ctx context.Context, name string, args ...string) ([]byte, error) {
	return h.Base.Query(ctx, name, args...)
}

// Run prints the command.
func (h *DryRunHost) Run(_ context.Context, name string, args ...string) error {
	fmt.Fprintf(h.Out, "  would run: %s\n", commandLine(name, args))
	return nil
}

// RunInput prints the command; its input is not shown.
func (h *DryRunHost) RunInput(_ context.Context, stdin []byte, name string, args ...string) error {
	fmt.Fprintf(h.Out, "  would run: %s  (with %d bytes on stdin, not shown)\n", commandLine(name, args), len(stdin))
	return nil
}

// ReadFile reads what a previous step would have written, or the disk.
func (h *DryRunHost) ReadFile(p string) ([]byte, error) {
	h.mu.Lock()
	f, ok := h.files[filepath.Clean(p)]
	h.mu.Unlock()
	if ok {
		if f.dir {
			return nil, &fs.PathError{Op: "read", Path: p, Err: errors.New("is a directory")}
		}
		return bytes.Clone(f.data), nil
	}
	return h.Base.ReadFile(p)
}

// Stat describes what a previous step would have written, or the disk.
func (h *DryRunHost) Stat(p string) (fs.FileInfo, error) {
	h.mu.Lock()
	f, ok := h.files[filepath.Clean(p)]
	h.mu.Unlock()
	if ok {
		return f.info(p), nil
	}
	return h.Base.Stat(p)
}

// WriteFile prints the file's diff against what is there.
func (h *DryRunHost) WriteFile(p string, data []byte, mode fs.FileMode) error {
	old, err := h.ReadFile(p)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	verb := "create"
	if exists {
		verb = "replace"
	}
	h.mu.Lock()
	h.files[filepath.Clean(p)] = memFile{data: bytes.Clone(data), mode: mode, uid: -1, gid: -1}
	h.mu.Unlock()
	fmt.Fprintf(h.Out, "  would %s %s (mode %04o)\n", verb, p, mode.Perm())
	if d := Diff(p, old, exists, data, h.Secrets); d != "" {
		fmt.Fprint(h.Out, indent(d, "    ")+"\n")
	}
	return nil
}

// Mkdir prints the directory unless it exists with that mode.
func (h *DryRunHost) Mkdir(p string, mode fs.FileMode) error {
	if fi, err := h.Stat(p); err == nil && fi.IsDir() && fi.Mode().Perm() == mode.Perm() {
		return nil
	}
	h.mu.Lock()
	h.files[filepath.Clean(p)] = memFile{dir: true, mode: mode, uid: -1, gid: -1}
	h.mu.Unlock()
	fmt.Fprintf(h.Out, "  would create directory %s (mode %04o)\n", p, mode.Perm())
	return nil
}

// Chown prints the change of owner.
func (h *DryRunHost) Chown(p string, uid, gid int) error {
	fmt.Fprintf(h.Out, "  would chown %d:%d %s\n", uid, gid, p)
	return nil
}

// memFile is a file or directory held in memory by DryRunHost and
// RecordingHost.
type memFile struct {
	data     []byte
	mode     fs.FileMode
	dir      bool
	uid, gid int
}

func (f memFile) info(p string) fs.FileInfo {
	return memInfo{name: filepath.Base(p), f: f}
}

type memInfo struct {
	name string
	f    memFile
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return int64(len(i.f.data)) }
func (i memInfo) Mode() fs.FileMode {
	if i.f.dir {
		return fs.ModeDir | i.f.mode.Perm()
	}
	return i.f.mode.Perm()
}
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.f.dir }
func (i memInfo) Sys() any {
	if i.f.uid < 0 {
		return nil
	}
	return &syscall.Stat_t{Uid: uint32(i.f.uid), Gid: uint32(i.f.gid)}
}

// owner returns the owner of a file described by fi, if known.
func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
