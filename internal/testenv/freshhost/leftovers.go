package freshhost

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every host's resources on the test machine are named after it
// (namePrefix + id):
//
//	StateRoot/ID/             state directory; ID/owner says who owns it
//	CGROUP2/rcfh-ID/          cgroup of nspawn and the container
//	netns rcfh-ID-out, -in    outside and host network namespaces
//	/etc/netns/rcfh-ID-out/   hosts and resolv.conf of the outside namespace
//
// The owner file is written before any of the others exist, and holds the
// PID and start time of the test process that made the host. Anything whose
// owner is gone is a leftover of a killed test run.

// claim creates dir (StateRoot/ID) with its owner file, atomically.
func claim(dir string) error {
	if err := os.MkdirAll(StateRoot, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(StateRoot, ".claim-")
	if err != nil {
		return err
	}
	owner := fmt.Sprintf("%d %s\n", os.Getpid(), startTime(os.Getpid()))
	if err := os.WriteFile(filepath.Join(tmp, "owner"), []byte(owner), 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// startTime is field 22 of /proc/PID/stat ("" if the process is gone), to
// tell a live owner from a new process that reuses its PID.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// ownerAlive reports whether the host ID's owner file names a live process.
func ownerAlive(id string) bool {
	b, err := os.ReadFile(filepath.Join(StateRoot, id, "owner"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	st := startTime(pid)
	return st != "" && st == f[1]
}

var leftovers sync.Once

// removeLeftoversOnce removes, once per test process, the resources of
// hosts whose test process is gone.
func removeLeftoversOnce(t testing.TB) {
	t.Helper()
	leftovers.Do(func() {
		ids, err := leftoverIDs()
		if err != nil {
			t.Logf("freshhost: looking for leftovers: %v", err)
		}
		cg, _ := cgroup2Root()
		for _, id := range ids {
			name := namePrefix + id
			t.Logf("freshhost: removing the leftovers of %s, whose test process is gone", name)
			if err := removeHost(name, filepath.Join(StateRoot, id), filepath.Join(cg, name)); err != nil {
				t.Logf("freshhost: remove %s: %v", name, err)
			}
		}
		// Claims interrupted before their rename.
		tmps, _ := filepath.Glob(filepath.Join(StateRoot, ".claim-*"))
		for _, d := range tmps {
			if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
				os.RemoveAll(d)
			}
		}
	})
}

// leftoverIDs lists the host IDs that own something on this machine but
// whose owner is gone.
func leftoverIDs() ([]string, error) {
	seen := map[string]bool{}
	var errs []error
	add := func(name string, trim ...string) {
		id, ok := strings.CutPrefix(name, namePrefix)
		if !ok {
			return
		}
		for _, s := range trim {
			id = strings.TrimSuffix(id, s)
		}
		if id != "" && !strings.ContainsAny(id, "/.") {
			seen[id] = true
		}
	}
	if entries, err := os.ReadDir(StateRoot); err == nil {
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				seen[e.Name()] = true
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			add(e.Name(), "-out", "-in")
		}
	}
	if entries, err := os.ReadDir("/etc/netns"); err == nil {
		for _, e := range entries {
			add(e.Name(), "-out", "-in")
		}
	}
	if cg, err := cgroup2Root(); err == nil {
		if entries, err := os.ReadDir(cg); err == nil {
			for _, e := range entries {
				if e.IsDir() {
					add(e.Name())
				}
			}
		}
	}
	var ids []string
	for id := range seen {
		if !ownerAlive(id) {
			ids = append(ids, id)
		}
	}
	return ids, errors.Join(errs...)
}

// removeHost kills whatever still runs in the host's cgroup and removes the
// host's cgroup, network namespaces, /etc/netns entry and state directory.
func removeHost(name, stateDir, cgroup string) error {
	var errs []error
	if err := removeCgroup(cgroup); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range []string{name + "-in", name + "-out"} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", ns, err, out))
			}
		}
		if err := os.RemoveAll(filepath.Join("/etc/netns", ns)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeStateDir(stateDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeCgroup kills every process in the cgroup dir and removes it with
// its descendants. A missing dir is no error.
func removeCgroup(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// cgroup.kill: SIGKILL to the whole subtree (Linux 5.14).
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("kill %s: %w", dir, err)
	}
	err := pollFor(10*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		return err != nil || strings.Contains(string(b), "populated 0")
	})
	if err != nil {
		return fmt.Errorf("%s: processes survive cgroup.kill", dir)
	}
	// Children first.
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeStateDir unmounts anything left mounted below dir, then deletes it.
func removeStateDir(dir string) error {
	if dir == "" || !strings.HasPrefix(dir, StateRoot+"/") {
		return fmt.Errorf("refusing to remove %q", dir)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mounts []string
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 5 {
				if mp := unescapeMount(f[4]); mp == dir || strings.HasPrefix(mp, dir+"/") {
					mounts = append(mounts, mp)
				}
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			exec.Command("umount", "-l", mounts[i]).Run()
		}
	}
	return os.RemoveAll(dir)
}

func pollFor(timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("timeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
