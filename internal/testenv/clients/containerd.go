package clients

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// StartContainerd starts a containerd (binary bin, needs root) with its
// root, state, socket and configuration in a temporary directory and the
// CRI plugin off, for ctr (Client.Containerd), and returns its socket. It
// stops at the test's cleanup.
func StartContainerd(t testing.TB, bin string) string {
	t.Helper()
	// A short directory: the socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "containerd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.Start(t, "containerd", nil, bin, "--config", path)
	p.WaitReady(t, 30*time.Second, func() error {
		conn, err := net.DialTimeout("unix", sock, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	return sock
}
