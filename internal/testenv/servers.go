package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartFerretDB starts a FerretDB (SQLite backend, telemetry off) on a free
// 127.0.0.1 port with its state in a temporary directory. It returns the
// server's mongodb:// URI (no database name; see MongoURI) and a function
// that stops it early, for tests of an unavailable store; cleanup stops it
// otherwise.
func StartFerretDB(t testing.TB, bin string) (uri string, stop func()) {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	p := Start(t, "ferretdb", nil, bin,
		"--handler=sqlite",
		"--sqlite-url=file:"+dir+"/",
		"--listen-addr="+addr,
		"--state-dir="+dir,
		"--debug-addr=-",
		"--telemetry=disable",
	)
	p.WaitReady(t, 30*time.Second, DialCheck(addr))
	return "mongodb://" + addr + "/", p.Stop
}

// MongoURI returns base (a mongodb:// URI) with its database set to db,
// keeping any query options.
func MongoURI(t testing.TB, base, db string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse mongo URI %q: %v", base, err)
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String()
}

// UniqueName returns prefix followed by "_" and 8 random hex digits: a
// database, user or repository name no other test run uses.
func UniqueName(prefix string) string {
	return prefix + "_" + RandomHex(4)
}

// RandomHex returns n random bytes in hex, for names and passwords.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// Version is a line of the distribution registry.
type Version struct {
	Name  string // subtest name, e.g. "distribution-2.8"
	Major int    // 2 or 3: decides the config the registry accepts
}

// The registry versions regctl supports.
var (
	Distribution2 = Version{Name: "distribution-2.8", Major: 2}
	Distribution3 = Version{Name: "distribution-3.1.2", Major: 3}
)

// TokenConfig is the registry's auth.token section.
type TokenConfig struct {
	Realm          string // token endpoint URL; use http://localhost:PORT/... (crane refuses loopback IPs)
	Service        string
	Issuer         string
	RootCertBundle string // PEM certificates; regctl keys generate writes bundle.pem; "" for none (jwks only)
	JWKS           string // JWK set (distribution 3 only); "" for none
}

// Registry is a running distribution registry.
type Registry struct {
	Version Version
	Host    string // "localhost:PORT", the name clients use
	URL     string // "http://127.0.0.1:PORT"
	Proc    *Proc
}

// StartRegistry starts the registry binary bin of version v with filesystem
// storage in a temporary directory, listening on 127.0.0.1 only, with no
// debug server and tracing export off, and token auth configured by tc. It
// waits until /v2/ answers 401 with a challenge naming tc.Realm.
func StartRegistry(t testing.TB, bin string, v Version, tc TokenConfig) *Registry {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	var auth strings.Builder
	fmt.Fprintf(&auth, "    realm: %q\n    service: %q\n    issuer: %q\n", tc.Realm, tc.Service, tc.Issuer)
	if tc.RootCertBundle != "" {
		fmt.Fprintf(&auth, "    rootcertbundle: %q\n", tc.RootCertBundle)
	}
	if tc.JWKS != "" {
		if v.Major < 3 {
			t.Fatalf("registry %s has no jwks option", v.Name)
		}
		fmt.Fprintf(&auth, "    jwks: %q\n", tc.JWKS)
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
  secret: %s
health:
  storagedriver:
    enabled: false
auth:
  token:
%s`, filepath.Join(dir, "storage"), port, RandomHex(16), auth.String())
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// distribution 3 exports traces by OTLP to localhost:4318 unless told
	// otherwise; nothing listens there.
	env := []string{"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none"}
	r := &Registry{
		Version: v,
		Host:    fmt.Sprintf("localhost:%d", port),
		URL:     fmt.Sprintf("http://127.0.0.1:%d", port),
	}
	r.Proc = Start(t, "registry-"+v.Name, env, bin, "serve", configPath)
	client := &http.Client{Timeout: 2 * time.Second}
	r.Proc.WaitReady(t, 30*time.Second, func() error {
		resp, err := client.Get(r.URL + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		challenge := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `realm="`+tc.Realm+`"`) {
			return fmt.Errorf("GET /v2/: status %d, challenge %q; want 401 with realm %q", resp.StatusCode, challenge, tc.Realm)
		}
		return nil
	})
	return r
}

// Dockerd returns the DOCKER_HOST value (unix:///...) of the running dockerd
// named by REGCTL_TEST_DOCKER_HOST, skipping the test if it is unset.
func Dockerd(t testing.TB) string {
	t.Helper()
	host := Require(t, EnvDockerHost, "the unix socket of a running dockerd")
	if !strings.Contains(host, "://") {
		host = "unix://" + host
	}
	return host
}

// StartDockerd starts a private dockerd (binary bin, needs root) with no
// networking of its own, the vfs storage driver and all state in temporary
// directories, and returns its DOCKER_HOST value. Tests that can share one
// should use Dockerd instead: this takes seconds and disk.
func StartDockerd(t testing.TB, bin, dockerCLI string) string {
	t.Helper()
	// A short directory: the socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "dockerd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	args, host := DockerdArgs(dir)
	p := Start(t, "dockerd", nil, bin, args...)
	p.WaitReady(t, 60*time.Second, DockerInfoCheck(t, []string{"DOCKER_HOST=" + host}, dockerCLI))
	return host
}

// DockerdArgs returns the arguments of a dockerd with no networking of its
// own and the vfs storage driver that keeps all its state in dir, and its
// DOCKER_HOST value: the socket dir/docker.sock. The socket path must fit
// in 108 bytes, so dir should be short.
func DockerdArgs(dir string) (args []string, host string) {
	host = "unix://" + filepath.Join(dir, "docker.sock")
	return []string{
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver=vfs",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", host,
	}, host
}

// DockerInfoCheck returns a readiness check that succeeds once `docker
// info`, run with the extra environment env, answers.
func DockerInfoCheck(t testing.TB, env []string, dockerCLI string) func() error {
	return func() error {
		r := Run(t, env, "", dockerCLI, "info", "--format", "{{.ServerVersion}}")
		if r.Code != 0 {
			return fmt.Errorf("docker info: exit %d: %s", r.Code, r.Stderr)
		}
		return nil
	}
}
