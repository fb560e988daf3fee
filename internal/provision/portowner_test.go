package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeProc builds a proc tree: net/tcp and net/tcp6, and per PID its comm
// and fd links.
func fakeProc(t *testing.T, tcp, tcp6 string, procs map[int][2]string) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "net"), 0o755))
	must(os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(tcp), 0o644))
	if tcp6 != "" {
		must(os.WriteFile(filepath.Join(root, "net", "tcp6"), []byte(tcp6), 0o644))
	}
	must(os.MkdirAll(filepath.Join(root, "self"), 0o755)) // not a PID
	for pid, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(pid))
		must(os.MkdirAll(filepath.Join(dir, "fd"), 0o755))
		must(os.WriteFile(filepath.Join(dir, "comm"), []byte(p[0]+"\n"), 0o644))
		for i, l := range strings.Fields(p[1]) {
			must(os.Symlink(l, filepath.Join(dir, "fd", fmt.Sprint(i))))
		}
	}
	return root
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func TestPortOwners(t *testing.T) {
	tcp := tcpHeader +
		// 0.0.0.0:80 LISTEN, inode 1001
		"   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0\n" +
		// 127.0.0.1:8080 LISTEN, inode 1002
		"   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0\n" +
		// an established connection from local port 443, inode 1003
		"   2: 0A0064C6:01BB 0100A8C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1\n"
	tcp6 := tcpHeader +
		// [::]:443 LISTEN, inode 2001
		"   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0\n"
	procs := map[int][2]string{
		1234: {"python3", "/dev/null socket:[1001] pipe:[5]"},
		77:   {"nginx", "socket:[2001] socket:[9]"},
		78:   {"nginx", "socket:[2001]"},
		79:   {"nginx", "socket:[2001]"},
		500:  {"sshd", "socket:[1003]"},
		600:  {"java", "socket:[1002]"},
	}
	proc := fakeProc(t, tcp, tcp6, procs)
	for _, tt := range []struct {
		port int
		want []string
	}{
		{80, []string{"python3 (pid 1234)"}},
		{443, []string{"nginx (pids 77, 78, 79)"}}, // the established socket on 443 is not a listener
		{8080, []string{"java (pid 600)"}},
		{22, nil},
	} {
		if got := PortOwners(proc, tt.port); !slices.Equal(got, tt.want) {
			t.Errorf("port %d: %q, want %q", tt.port, got, tt.want)
		}
	}
	// No /proc at all: nothing known, no error.
	if got := PortOwners(filepath.Join(t.TempDir(), "nothing"), 80); got != nil {
		t.Errorf("missing proc: %q", got)
	}
}

// TestPortOwnersLocal: this process's own listener, found in the real /proc.
func TestPortOwnersLocal(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), os.Getpid())
	if got := LocalSystem().PortOwner(port); !slices.Contains(got, want) {
		t.Errorf("port %d: %q, want %q", port, got, want)
	}
}

// TestPreflightPortOwner: the ports check names who holds a busy port,
// and falls back to ss's hint when it cannot tell.
func TestPreflightPortOwner(t *testing.T) {
	c := testConfig(t)
	base := System{
		EUID: func() int { return 0 },
		OSRelease: func() ([]byte, error) {
			return []byte("ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\n"), nil
		},
		LookupHost: func(context.Context, string) ([]string, error) { return []string{"203.0.113.10"}, nil },
		HostAddrs:  func() ([]net.IP, error) { return []net.IP{net.ParseIP("203.0.113.10")}, nil },
		FreeSpace:  func(string) (uint64, error) { return 50 << 30, nil },
	}
	busy := func(ports ...int) func(int) error {
		return func(p int) error {
			if slices.Contains(ports, p) {
				return errors.New("address already in use")
			}
			return nil
		}
	}
	owners := map[int][]string{80: {"python3 (pid 1234)"}, 443: {"nginx (pids 77, 78)", "haproxy (pid 9)"}}
	for _, tt := range []struct {
		name     string
		free     func(int) error
		owner    func(int) []string
		opts     PreflightOptions
		failed   bool
		want     []string
		wantNot  []string
		wantPass bool
	}{
		{name: "free", free: busy(), owner: func(int) []string { t.Error("asked for an owner of a free port"); return nil }, wantPass: true},
		{name: "80 by python", free: busy(80), owner: func(p int) []string { return owners[p] }, failed: true,
			want: []string{"port 80 is in use by python3 (pid 1234)", "stop it"}, wantNot: []string{"ss -ltnp", "443"}},
		{name: "both", free: busy(80, 443), owner: func(p int) []string { return owners[p] }, failed: true,
			want: []string{"port 80 is in use by python3 (pid 1234); port 443 is in use by nginx (pids 77, 78), haproxy (pid 9)"}},
		{name: "owner unknown", free: busy(443), owner: func(int) []string { return nil }, failed: true,
			want: []string{"port 443 is in use", "ss -ltnp 'sport = :443'"}},
		{name: "no owner probe", free: busy(80), failed: true, want: []string{"port 80 is in use", "ss -ltnp 'sport = :80'"}},
		{name: "ours", free: busy(80, 443), owner: func(int) []string { t.Error("asked for an owner of our own ports"); return nil },
			opts: PreflightOptions{PortsOurs: func() bool { return true }}, wantPass: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			s.PortFree, s.PortOwner = tt.free, tt.owner
			r := Preflight(context.Background(), s, c, tt.opts)
			if Failed(r) != tt.failed {
				t.Errorf("failed = %v, want %v: %+v", Failed(r), tt.failed, r)
			}
			var msg string
			for _, x := range r {
				if x.Name == CheckPorts {
					msg = x.Msg
					if x.OK != tt.wantPass {
						t.Errorf("ports OK = %v, want %v", x.OK, tt.wantPass)
					}
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("ports message lacks %q: %s", w, msg)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(msg, w) {
					t.Errorf("ports message has %q: %s", w, msg)
				}
			}
		})
	}
}
