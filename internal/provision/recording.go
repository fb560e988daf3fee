package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// RecordingHost is a host for tests: an in-memory file system, scripted
// answers to queries, and a list of every action that would change the
// host (commands, writes of changed files, new directories, owners).
// Writing a file with the content and mode it already has is not an
// action.
type RecordingHost struct {
	// Respond answers Query; nil answers every query with an error.
	Respond func(cmd []string) ([]byte, error)
	// OnRun, if set, is called for every Run and RunInput (after it is
	// recorded), so a test can model what the command changes; its error
	// is returned.
	OnRun func(cmd []string, stdin []byte) error

	mu      sync.Mutex
	files   map[string]memFile
	actions []string
	queries []string
}

var _ Host = (*RecordingHost)(nil)

// NewRecordingHost returns an empty recording host.
func NewRecordingHost() *RecordingHost {
	return &RecordingHost{files: map[string]memFile{}}
}

// Actions returns the actions recorded so far, one line each:
// "run CMD", "write PATH MODE", "mkdir PATH MODE", "chown UID:GID PATH".
func (h *RecordingHost) Actions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.actions...)
}

// Queries returns the queries run so far.
func (h *RecordingHost) Queries() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.queries...)
}

// Reset forgets the recorded actions and queries, keeping the files.
func (h *RecordingHost) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.actions, h.queries = nil, nil
}

// Paths lists the files and directories held, sorted.
func (h *RecordingHost) Paths() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for p := range h.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// SetFile puts a file in place without recording it, as test setup.
func (h *RecordingHost) SetFile(p string, data []byte, mode fs.FileMode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mkdirParents(p)
	h.files[filepath.Clean(p)] = memFile{data: bytes.Clone(data), mode: mode, uid: -1, gid: -1}
}

// SetDir puts a directory in place without recording it, as test setup.
func (h *RecordingHost) SetDir(p string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mkdirParents(p)
	h.files[filepath.Clean(p)] = memFile{dir: true, mode: ModeDirParents, uid: -1, gid: -1}
}

// Owner returns the owner a file was given with Chown, or -1, -1.
func (h *RecordingHost) Owner(p string) (uid, gid int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[filepath.Clean(p)]
	if !ok {
		return -1, -1
	}
	return f.uid, f.gid
}

func (h *RecordingHost) record(format string, args ...any) {
	h.actions = append(h.actions, fmt.Sprintf(format, args...))
}

// Query answers from Respond.
func (h *RecordingHost) Query(_ context.Context, name string, args ...string) ([]byte, error) {
	cmd := append([]string{name}, args...)
	h.mu.Lock()
	h.queries = append(h.queries, strings.Join(cmd, " "))
	respond := h.Respond
	h.mu.Unlock()
	if respond == nil {
		return nil, &CmdError{Args: cmd, Err: errors.New("no scripted answer")}
	}
	return respond(cmd)
}

// Run records the command.
func (h *RecordingHost) Run(ctx context.Context, name string, args ...string) error {
	return h.RunInput(ctx, nil, name, args...)
}

// RunInput records the command and the size of its input.
func (h *RecordingHost) RunInput(_ context.Context, stdin []byte, name string, args ...string) error {
	cmd := append([]string{name}, args...)
	h.mu.Lock()
	if stdin != nil {
		h.record("run %s <stdin %d bytes>", strings.Join(cmd, " "), len(stdin))
	} else {
		h.record("run %s", strings.Join(cmd, " "))
	}
	onRun := h.OnRun
	h.mu.Unlock()
	if onRun != nil {
		return onRun(cmd, stdin)
	}
	return nil
}

// ReadFile reads from memory.
func (h *RecordingHost) ReadFile(p string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[filepath.Clean(p)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	if f.dir {
		return nil, &fs.PathError{Op: "read", Path: p, Err: errors.New("is a directory")}
	}
	return bytes.Clone(f.data), nil
}

// Stat describes a file held in memory.
func (h *RecordingHost) Stat(p string) (fs.FileInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[filepath.Clean(p)]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return f.info(p), nil
}

// WriteFile stores the file; the parent directory must exist.
func (h *RecordingHost) WriteFile(p string, data []byte, mode fs.FileMode) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p = filepath.Clean(p)
	if parent, ok := h.files[filepath.Dir(p)]; !ok || !parent.dir {
		return &fs.PathError{Op: "write", Path: p, Err: fs.ErrNotExist}
	}
	if old, ok := h.files[p]; ok && !old.dir && bytes.Equal(old.data, data) && old.mode == mode.Perm() {
		return nil
	}
	h.files[p] = memFile{data: bytes.Clone(data), mode: mode.Perm(), uid: -1, gid: -1}
	h.record("write %s %04o", p, mode.Perm())
	return nil
}

// Mkdir creates the directory and its parents.
func (h *RecordingHost) Mkdir(p string, mode fs.FileMode) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p = filepath.Clean(p)
	if f, ok := h.files[p]; ok && f.dir && f.mode == mode.Perm() {
		return nil
	}
	h.mkdirParents(p)
	h.files[p] = memFile{dir: true, mode: mode.Perm(), uid: -1, gid: -1}
	h.record("mkdir %s %04o", p, mode.Perm())
	return nil
}

func (h *RecordingHost) mkdirParents(p string) {
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if _, ok := h.files[d]; !ok {
			h.files[d] = memFile{dir: true, mode: ModeDirParents, uid: -1, gid: -1}
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

// Chown records the new owner.
func (h *RecordingHost) Chown(p string, uid, gid int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p = filepath.Clean(p)
	f, ok := h.files[p]
	if !ok {
		return &fs.PathError{Op: "chown", Path: p, Err: fs.ErrNotExist}
	}
	if f.uid == uid && f.gid == gid {
		return nil
	}
	f.uid, f.gid = uid, gid
	h.files[p] = f
	h.record("chown %d:%d %s", uid, gid, p)
	return nil
}
