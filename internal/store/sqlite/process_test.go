package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// The test binary runs as a helper process when helperEnv is set: a second
// regctl process on the same database file.
const (
	helperEnv   = "REGCTL_SQLITE_TEST_HELPER" // the mode: "open" or "hammer"
	helperPath  = "REGCTL_SQLITE_TEST_PATH"   // the database file
	helperID    = "REGCTL_SQLITE_TEST_ID"     // hammer: this process's number
	helperCount = "REGCTL_SQLITE_TEST_COUNT"  // hammer: how many updates
)

// nobody is the user a root test runs its permission helpers as, since
// file modes do not stop root.
const nobody = 65534

func runHelper(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := os.Getenv(helperPath)
	switch mode {
	case "open":
		// Prints whether Open's error wraps ErrUnavailable, then the
		// error.
		s, err := Open(ctx, path)
		if err == nil {
			fmt.Println("unavailable=false\nok")
			_ = s.Close(ctx)
			return 0
		}
		fmt.Printf("unavailable=%v\n%v\n", errors.Is(err, store.ErrUnavailable), err)
		return 0
	case "hammer":
		id, _ := strconv.Atoi(os.Getenv(helperID))
		n, _ := strconv.Atoi(os.Getenv(helperCount))
		if err := hammer(ctx, path, id, n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// hammer opens path and makes n updates of user alice (appending its own
// values to label n) and n rule insertions, interleaved with reads.
func hammer(ctx context.Context, path string, id, n int) error {
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	for i := range n {
		v := fmt.Sprintf("p%d-%03d", id, i)
		_, err := s.UpdateUser(ctx, "alice", func(u *store.User) error {
			if u.Labels == nil {
				u.Labels = map[string][]string{}
			}
			u.Labels["n"] = append(u.Labels["n"], v)
			return nil
		})
		if err != nil {
			return fmt.Errorf("process %d: %w", id, err)
		}
		if err := s.AddRule(ctx, acl.Rule{Seq: int64(id*100000 + i), Actions: []string{"pull"}}); err != nil {
			return fmt.Errorf("process %d: %w", id, err)
		}
		if _, err := s.ListRules(ctx); err != nil {
			return fmt.Errorf("process %d: %w", id, err)
		}
	}
	return nil
}

// TestCrossProcess: real processes (this test binary re-executed) and this
// one write to the same file at once. Every update survives and no
// "database is locked" surfaces.
func TestCrossProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regctl.db")
	s := openPath(t, path)
	ctx := testCtx(t)
	if err := s.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	const procs, n = 3, 60
	var wg sync.WaitGroup
	for id := 1; id < procs; id++ {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"=hammer", helperPath+"="+path,
				helperID+"="+strconv.Itoa(id), helperCount+"="+strconv.Itoa(n))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("helper process %d: %v\n%s", id, err, out)
			}
		})
	}
	wg.Go(func() {
		if err := hammer(ctx, path, 0, n); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()

	u, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for id := range procs {
		for i := range n {
			want = append(want, fmt.Sprintf("p%d-%03d", id, i))
		}
	}
	if got := slices.Sorted(slices.Values(u.Labels["n"])); !slices.Equal(got, want) {
		t.Errorf("label n has %d values, want %d, each once: updates were lost or doubled", len(got), len(want))
	}
	rules, err := s.ListRules(ctx)
	if err != nil || len(rules) != procs*n {
		t.Errorf("ListRules: %d rules, %v; want %d", len(rules), err, procs*n)
	}
}

var (
	helperBinOnce sync.Once
	helperBin     string
	helperBinErr  error
)

// otherUserBinary returns a copy of the test binary that user nobody can
// run.
func otherUserBinary() (string, error) {
	helperBinOnce.Do(func() {
		dir, err := fixtureDir()
		if err != nil {
			helperBinErr = err
			return
		}
		helperBin = filepath.Join(dir, "sqlite.test")
		helperBinErr = copyFile(os.Args[0], helperBin, 0o755)
	})
	return helperBin, helperBinErr
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// openAsOther runs Open(path) in a helper process as a user the file modes
// apply to: nobody when the test runs as root, else this user. It returns
// whether the error wrapped ErrUnavailable and the error's message ("ok"
// when Open succeeded).
func openAsOther(t *testing.T, path string) (unavailable bool, msg string) {
	t.Helper()
	bin := os.Args[0]
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		var err error
		if bin, err = otherUserBinary(); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	cmd := exec.CommandContext(testCtx(t), bin)
	cmd.Env = append(os.Environ(), helperEnv+"=open", helperPath+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = "/"
	out, err := cmd.Output()
	if _, exited := errors.AsType[*exec.ExitError](err); err != nil && !exited && errors.Is(err, fs.ErrPermission) && cred != nil {
		// A noexec /tmp, say.
		t.Skipf("cannot run the test binary as user %d: %v", nobody, err)
	}
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	first, rest, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return first == "unavailable=true", rest
}

// TestPermissions: a file or directory regctl may not write gives a clear
// error naming the file, wrapping ErrUnavailable. The file modes are
// chosen so that they stop the helper's user: as root, the helper runs as
// nobody and the files belong to root.
func TestPermissions(t *testing.T) {
	root := os.Geteuid() == 0
	// mode returns the mode that gives the helper's user the access
	// ("rw", "r" or "") wanted; dirs get x with r.
	mode := func(want string, dir bool) os.FileMode {
		var m os.FileMode
		if strings.Contains(want, "r") {
			m |= 4
		}
		if strings.Contains(want, "w") {
			m |= 2
		}
		if dir && m != 0 {
			m |= 1
		}
		if root {
			return 0o700 | m // root keeps full access; nobody gets m
		}
		return m << 6
	}
	// setup makes a database in a fresh directory that the helper's user
	// can reach and returns the directory and the file.
	setup := func(t *testing.T) (dir, path string) {
		top := t.TempDir()
		dir = filepath.Join(top, "data")
		path = filepath.Join(dir, "regctl.db")
		s, err := Open(testCtx(t), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(testCtx(t), &store.User{Username: "alice", PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Dir(top), top} {
			if root {
				// t.TempDir's directories are 0700.
				chmod(t, p, 0o755)
			}
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		return dir, path
	}

	for _, c := range []struct {
		name      string
		prepare   func(t *testing.T, dir, path string) string // returns the path to open
		wantParts []string
	}{
		{
			name: "read-only file",
			prepare: func(t *testing.T, dir, path string) string {
				chmod(t, dir, mode("rw", true))
				chmod(t, path, mode("r", false))
				return path
			},
			wantParts: []string{"cannot open the file for reading and writing", "permission denied"},
		},
		{
			name: "unreadable file",
			prepare: func(t *testing.T, dir, path string) string {
				chmod(t, dir, mode("rw", true))
				chmod(t, path, mode("", false))
				return path
			},
			wantParts: []string{"permission denied"},
		},
		{
			name: "read-only directory",
			prepare: func(t *testing.T, dir, path string) string {
				for _, p := range []string{path + "-wal", path + "-shm"} {
					if _, err := os.Stat(p); err == nil {
						t.Fatalf("%s exists after a clean close", p)
					}
				}
				chmod(t, path, mode("rw", false))
				chmod(t, dir, mode("r", true))
				return path
			},
			wantParts: []string{"directory is not writable"},
		},
		{
			name: "uncreatable directory",
			prepare: func(t *testing.T, dir, _ string) string {
				chmod(t, dir, mode("r", true))
				return filepath.Join(dir, "sub", "regctl.db")
			},
			wantParts: []string{"create directory", "permission denied"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, path := setup(t)
			path = c.prepare(t, dir, path)
			unavailable, msg := openAsOther(t, path)
			t.Logf("Open: %s", msg)
			if !unavailable {
				t.Errorf("Open error %q does not wrap ErrUnavailable", msg)
			}
			for _, part := range append(c.wantParts, path) {
				if !strings.Contains(msg, part) {
					t.Errorf("Open error %q does not contain %q", msg, part)
				}
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
