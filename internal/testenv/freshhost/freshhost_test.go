//go:build integration

package freshhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// TestFreshHostBoots is the harness's smoke test: a bare host installs
// docker, compose, ufw and fail2ban offline from the local repository, runs
// the cached images, publishes a port the outside namespace reaches, and
// has no route out; a full host has docker running at boot.
func TestFreshHostBoots(t *testing.T) {
	a := Cache(t) // first, so the build's time is not a subtest's
	t.Run("bare", func(t *testing.T) {
		start := time.Now()
		h := Boot(t, Options{Variant: Bare, MountRepo: true, Hostnames: []string{"registry.test"}})
		t.Logf("TIMING boot (bare, volatile): %s", time.Since(start).Round(time.Millisecond))

		// Fresh: nothing of what init installs is there, and apt has only
		// the local repository.
		if r := h.Run(t, "", "sh", "-c", "command -v docker dockerd ufw fail2ban-server"); r.Code == 0 {
			t.Fatalf("a bare host already has %s", r.Stdout)
		}
		if id := strings.TrimSpace(string(h.ReadFile(t, "/etc/machine-id"))); len(id) != 32 {
			t.Errorf("machine-id = %q, want 32 hex digits generated at boot", id)
		}
		h.Sh(t, "! grep -rs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d | grep -v 'file:"+RepoDir+"'")

		// What `regctl init` installs, as it does (docker-compose-v2 is the
		// repository's stand-in for Ubuntu's package).
		start = time.Now()
		h.MustExec(t, Cmd{Args: []string{"apt-get", "update", "-q"}, Env: []string{"DEBIAN_FRONTEND=noninteractive"}})
		h.MustExec(t, Cmd{
			Args:    []string{"apt-get", "install", "-y", "-q", "--no-install-recommends", "ufw", "fail2ban", "logrotate", "docker.io", "docker-compose-v2"},
			Env:     []string{"DEBIAN_FRONTEND=noninteractive"},
			Timeout: 10 * time.Minute,
			Quiet:   true,
		})
		t.Logf("TIMING apt-get update + install from the local repository: %s", time.Since(start).Round(time.Millisecond))
		h.MustRun(t, "", "systemctl", "is-active", "docker", "containerd", "fail2ban")
		h.MustRun(t, "", "docker", "compose", "version")

		start = time.Now()
		h.LoadImages(t, a.Images.All()...)
		t.Logf("TIMING docker load (3 images): %s", time.Since(start).Round(time.Millisecond))

		r := h.MustRun(t, "", "docker", "run", "--rm", RegistryImage, "--version")
		if !strings.Contains(r.Output(), "3.1.2") {
			t.Errorf("registry --version = %q, want 3.1.2", r.Output())
		}
		// Compose runs the registry with only the config path.
		h.MustRun(t, "", "docker", "run", "-d", "--name", "reg", RegistryImage, "/etc/distribution/config.yml")
		h.MustRun(t, "", "docker", "run", "--rm", "--network", "container:reg", RegistryImage,
			"sh", "-c", "for i in $(seq 50); do wget -q -O /dev/null http://127.0.0.1:5001/debug/health && exit 0; sleep 0.2; done; exit 1")
		r = h.MustRun(t, "", "docker", "run", "--rm", "--entrypoint", "/ferretdb", FerretDBImage, "--version")
		if !strings.Contains(r.Output(), "1.24.2") {
			t.Errorf("ferretdb --version = %q, want 1.24.2", r.Output())
		}

		// nginx, published, reached from outside by name.
		h.Sh(t, `mkdir -p /srv/www && echo hello-from-freshhost >/srv/www/index.html`)
		// A minimal config like regctl's replaces Debian's /etc/nginx: no
		// user directive, temp paths in /var/cache/nginx.
		conf := `events {}
http {
    client_body_temp_path /var/cache/nginx/client_body;
    proxy_temp_path /var/cache/nginx/proxy;
    server { listen 80; root /srv/www; location /healthz { return 200 "ok\n"; } }
}
`
		h.CopyIn(t, "/srv/nginx/nginx.conf", []byte(conf), 0o644)
		h.MustRun(t, "", "docker", "run", "-d", "--name", "web", "-p", "80:80",
			"-v", "/srv/www:/srv/www:ro", "-v", "/srv/nginx:/etc/nginx:ro", NginxImage)
		h.MustRun(t, "", "sh", "-c", "for i in $(seq 50); do docker exec web wget -q -O /dev/null http://127.0.0.1/healthz && exit 0; sleep 0.2; done; exit 1")

		// From outside: by name with wget in the outside namespace if the
		// machine has it, and from Go.
		client := h.HTTPClient(5 * time.Second)
		var body string
		err := testenv.Poll(20*time.Second, 200*time.Millisecond, func() error {
			resp, err := client.Get("http://registry.test/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
		if err != nil || !strings.Contains(body, "hello-from-freshhost") {
			t.Fatalf("GET http://registry.test/ from outside: %v %q", err, body)
		}
		h.MustOutside(t, "", "bash", "-c", "exec 3<>/dev/tcp/registry.test/80 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q hello-from-freshhost <&3")
		// ufw works: a port outside docker answers until the firewall is
		// on (a docker-published one bypasses it).
		h.MustRun(t, "", "systemd-run", "--unit=probe", "--property=WorkingDirectory=/srv/www", "python3", "-m", "http.server", "8000")
		reach := func(port int) error {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c, err := h.DialContext(ctx, "tcp", fmt.Sprintf("registry.test:%d", port))
			if err == nil {
				c.Close()
			}
			return err
		}
		if err := testenv.Poll(10*time.Second, 200*time.Millisecond, func() error { return reach(8000) }); err != nil {
			t.Fatalf("port 8000 before ufw: %v", err)
		}
		h.Sh(t, "ufw allow 22/tcp && ufw default deny incoming && ufw --force enable && ufw status verbose | grep -q 'Status: active'")
		if err := reach(8000); err == nil {
			t.Errorf("port 8000 answers outside with ufw on")
		}
		if err := reach(80); err != nil {
			t.Errorf("docker-published port 80 with ufw on: %v", err)
		}

		// No route out. The outside end answers (refused: nothing listens);
		// the outside namespace has no route beyond its link, so nothing
		// is even tried past it; and the test machine's own addresses are
		// unreachable from the host and its containers.
		h.Sh(t, fmt.Sprintf("timeout 5 bash -c 'exec 3<>/dev/tcp/%s/9' 2>&1 | grep -q refused", h.OuterIP))
		if r := testenv.Run(t, nil, "", "ip", "-n", h.Netns, "route", "get", "203.0.113.1"); r.Code == 0 {
			t.Errorf("the outside namespace has a route beyond its link: %s", r.Stdout)
		}
		addrs := machineAddrs(t)
		for _, addr := range addrs {
			r := h.Run(t, "", "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+addr+"/80")
			if r.Code == 0 || strings.Contains(r.Output(), "refused") {
				t.Errorf("the host reaches %s (exit %d): it must have no route out", addr, r.Code)
			}
		}
		if len(addrs) > 0 {
			r = h.Run(t, "", "docker", "run", "--rm", NginxImage, "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+addrs[0]+"/80")
			if r.Code == 0 || strings.Contains(r.Output(), "refused") {
				t.Errorf("a container on the host reaches %s", addrs[0])
			}
		}

		if units := h.FailedUnits(t); len(units) > 0 {
			t.Logf("failed units on the bare host: %v", units)
		}
	})

	t.Run("full", func(t *testing.T) {
		start := time.Now()
		h := Boot(t, Options{Variant: Full})
		t.Logf("TIMING boot (full, volatile): %s", time.Since(start).Round(time.Millisecond))
		h.MustRun(t, "", "docker", "info")
		h.MustRun(t, "", "docker", "compose", "version")
		h.MustRun(t, "", "ufw", "version")
		h.MustRun(t, "", "systemctl", "is-active", "docker", "containerd", "fail2ban")
		if st := h.SystemState(t); st != "running" {
			t.Errorf("full host: system state %q, failed units %v", st, h.FailedUnits(t))
		}
	})
}

// TestFreshHostReboot checks a persistent host keeps its state across a
// reboot, and that the network comes back.
func TestFreshHostReboot(t *testing.T) {
	h := Boot(t, Options{Variant: Full, Persistent: true})
	id := h.ReadFile(t, "/etc/machine-id")
	h.CopyIn(t, "/root/kept", []byte("kept\n"), 0o600)
	h.LoadImages(t, h.Artifacts.Images.Registry)
	h.MustRun(t, "", "docker", "run", "-d", "--restart", "always", "--name", "reg", "-p", "5000:5000", RegistryImage)
	h.Reboot(t)
	if got := h.ReadFile(t, "/etc/machine-id"); string(got) != string(id) {
		t.Errorf("machine-id changed across the reboot: %q, then %q", id, got)
	}
	if got := string(h.ReadFile(t, "/root/kept")); got != "kept\n" {
		t.Errorf("/root/kept = %q after the reboot", got)
	}
	h.MustRun(t, "", "docker", "image", "inspect", RegistryImage)
	// The restart policy brings the registry back; it answers outside.
	client := h.HTTPClient(5 * time.Second)
	err := testenv.Poll(60*time.Second, 500*time.Millisecond, func() error {
		resp, err := client.Get(fmt.Sprintf("http://%s:5000/v2/", h.IP))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the registry container did not come back after the reboot: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", h.IP.String()+":5000")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// machineAddrs are the test machine's own IPv4 addresses outside loopback:
// the host must not reach them.
func machineAddrs(t *testing.T) []string {
	r := testenv.MustRun(t, nil, "", "ip", "-4", "-o", "addr", "show", "scope", "global")
	var addrs []string
	for _, line := range strings.Split(r.Stdout, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				addrs = append(addrs, strings.Split(f[i+1], "/")[0])
			}
		}
	}
	return addrs
}

// TestFreshHostExec checks what Exec promises (clean environment, working
// directory, stdin, exit codes, timeouts that kill everything, the host's
// cgroup) and that hosts booted at the same time from one rootfs are
// separate machines.
func TestFreshHostExec(t *testing.T) {
	Cache(t)
	var wg sync.WaitGroup
	wg.Add(2)
	ids := make([]string, 2)
	// Host 0 gets its own hostname and a read-only bind mount.
	probe := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(probe, []byte("#!/bin/sh\necho probe-ok\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("hosts", func(t *testing.T) {
		for i := range ids {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				booted := sync.OnceFunc(wg.Done)
				defer booted()
				o := Options{Hostnames: []string{"h.test"}}
				wantName := ""
				if i == 0 {
					o.Hostname = "fresh.example"
					o.Binds = []Bind{{Src: probe, Dst: "/usr/local/bin/probe", ReadOnly: true}}
				}
				h := Boot(t, o)
				if wantName = o.Hostname; wantName == "" {
					wantName = h.Name
				}
				ids[i] = strings.TrimSpace(string(h.ReadFile(t, "/etc/machine-id")))
				h.CopyIn(t, "/root/marker", []byte(h.Name), 0o600)
				booted()
				wg.Wait() // both hosts are up

				if got := string(h.ReadFile(t, "/root/marker")); got != h.Name {
					t.Errorf("/root/marker = %q, want %q: hosts share their files", got, h.Name)
				}
				if got := strings.TrimSpace(h.MustRun(t, "", "hostname").Stdout); got != wantName {
					t.Errorf("hostname = %q, want %q", got, wantName)
				}
				if i == 0 {
					if got := h.MustRun(t, "", "probe").Stdout; got != "probe-ok\n" {
						t.Errorf("bind-mounted probe printed %q", got)
					}
					if r := h.Run(t, "", "sh", "-c", "echo x >>/usr/local/bin/probe"); r.Code == 0 {
						t.Errorf("a read-only bind mount is writable inside")
					}
				}
				r := h.MustExec(t, Cmd{Args: []string{"env"}, Env: []string{"EXTRA=1"}})
				var keys []string
				for _, kv := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
					k, _, _ := strings.Cut(kv, "=")
					keys = append(keys, k)
				}
				slices.Sort(keys)
				if want := []string{"EXTRA", "HOME", "LANG", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}; !slices.Equal(keys, want) {
					t.Errorf("environment inside: %v, want %v", keys, want)
				}
				if got := strings.TrimSpace(h.MustExec(t, Cmd{Args: []string{"pwd"}, Dir: "/tmp"}).Stdout); got != "/tmp" {
					t.Errorf("pwd with Dir /tmp = %q", got)
				}
				if got := h.MustRun(t, "piped\n", "cat").Stdout; got != "piped\n" {
					t.Errorf("stdin: got %q", got)
				}
				if r := h.Run(t, "", "sh", "-c", "exit 7"); r.Code != 7 {
					t.Errorf("exit code %d, want 7", r.Code)
				}
				if got := h.MustRun(t, "", "cat", "/proc/self/cgroup").Stdout; !slices.Contains(strings.Split(got, "\n"), "0::/") {
					t.Errorf("/proc/self/cgroup = %q, want 0::/ (the host's root cgroup)", got)
				}
				start := time.Now()
				r = h.Exec(t, Cmd{Args: []string{"sh", "-c", "sleep 300 & sleep 301"}, Timeout: time.Second})
				if r.Code != -1 || time.Since(start) > 20*time.Second {
					t.Errorf("a command past its timeout: exit %d after %s", r.Code, time.Since(start))
				}
				if err := testenv.Poll(5*time.Second, 100*time.Millisecond, func() error {
					if r := h.Run(t, "", "pgrep", "-x", "sleep"); r.Code == 0 {
						return fmt.Errorf("still running: %s", r.Stdout)
					}
					return nil
				}); err != nil {
					t.Errorf("processes of a timed-out command: %v", err)
				}
				data := make([]byte, 1<<16)
				rand.Read(data)
				h.CopyIn(t, "/opt/x/blob", data, 0o640)
				if got := h.ReadFile(t, "/opt/x/blob"); !bytes.Equal(got, data) {
					t.Errorf("ReadFile after CopyIn: %d bytes differ from the %d written", len(got), len(data))
				}
				if got := strings.TrimSpace(h.MustRun(t, "", "stat", "-c", "%a", "/opt/x/blob").Stdout); got != "640" {
					t.Errorf("mode %s, want 640", got)
				}
				h.MustOutside(t, "", "sh", "-c", "getent hosts h.test | grep -qF "+h.IP.String())
			})
		}
	})
	if ids[0] == ids[1] || len(ids[0]) != 32 {
		t.Errorf("machine IDs %q and %q: want two distinct ones", ids[0], ids[1])
	}
}

// TestFreshHostOutsideDocker pushes an image from a dockerd in the outside
// namespace to a registry on the host, as a client of the registry host
// would.
func TestFreshHostOutsideDocker(t *testing.T) {
	h := Boot(t, Options{Variant: Full, Hostnames: []string{"registry.test"}})
	h.LoadImages(t, h.Artifacts.Images.Registry)
	h.MustRun(t, "", "docker", "run", "-d", "--name", "reg", "-p", "5000:5000", RegistryImage)

	host := h.OutsideDockerd(t, "--insecure-registry=registry.test:5000")
	docker := testenv.RequireBinary(t, "", "docker", "the docker CLI")
	env := []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + t.TempDir()}
	testenv.MustRun(t, env, "", docker, "load", "-i", h.Artifacts.Images.FerretDB)
	testenv.MustRun(t, env, "", docker, "tag", FerretDBImage, "registry.test:5000/t/ferretdb:1")
	err := testenv.Poll(30*time.Second, time.Second, func() error {
		if r := testenv.Run(t, env, "", docker, "push", "registry.test:5000/t/ferretdb:1"); r.Code != 0 {
			return fmt.Errorf("docker push: %s", r.Stderr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.MustRun(t, "", "docker", "pull", "127.0.0.1:5000/t/ferretdb:1")
}

// TestFreshHostMirror pulls the cached images through Host.Mirror: on a
// bare host before docker is installed (as `regctl init` would find it),
// and on a full host whose dockerd already runs.
func TestFreshHostMirror(t *testing.T) {
	a := Cache(t)
	t.Run("bare", func(t *testing.T) {
		h := Boot(t, Options{MountRepo: true})
		h.Mirror(t, a.Images.Registry)
		h.MirrorAs(t, a.Images.Nginx, "nginx:1.28-alpine")
		h.MustExec(t, Cmd{
			Args:    []string{"sh", "-c", "apt-get update -q && apt-get install -y -q --no-install-recommends docker.io docker-compose-v2"},
			Env:     []string{"DEBIAN_FRONTEND=noninteractive"},
			Timeout: 10 * time.Minute,
			Quiet:   true,
		})
		start := time.Now()
		r := h.MustRun(t, "", "docker", "run", "--rm", RegistryImage, "--version")
		t.Logf("TIMING pull and run through the mirror: %s", time.Since(start).Round(time.Millisecond))
		if !strings.Contains(r.Output(), "3.1.2") {
			t.Errorf("registry --version = %q", r.Output())
		}
		// Under a Docker Hub official-image name, by compose.
		h.CopyIn(t, "/srv/c/compose.yaml", []byte("services:\n  web:\n    image: nginx:1.28-alpine\n    command: [nginx, -v]\n"), 0o644)
		h.MustRun(t, "", "docker", "compose", "-f", "/srv/c/compose.yaml", "up", "--abort-on-container-exit")
	})
	t.Run("full", func(t *testing.T) {
		h := Boot(t, Options{Variant: Full})
		h.Mirror(t, a.Images.FerretDB)
		h.MustRun(t, "", "docker", "pull", FerretDBImage)
		if r := h.Run(t, "", "docker", "pull", "nginx:never-pushed"); r.Code == 0 {
			t.Errorf("pulled an image the mirror does not have")
		}
	})
}

// TestFreshHostStaticRegctl checks that StaticRegctl's binary has no
// program interpreter: a FROM scratch image can run it.
func TestFreshHostStaticRegctl(t *testing.T) {
	RequireMachine(t)
	f, err := elf.Open(StaticRegctl(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("StaticRegctl's binary is dynamically linked")
		}
	}
}
