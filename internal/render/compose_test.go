package render_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
)

// loadCompose writes the rendered tree's compose.yaml and directories to a
// temporary root and loads it with compose-go, as docker compose would.
func loadCompose(t *testing.T, files []render.File) (*types.Project, []byte) {
	t.Helper()
	dir := t.TempDir()
	var compose []byte
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if f.Dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFile(t, p, f.Data, 0o644)
		if f.Path == render.ComposeFile {
			compose = f.Data
		}
	}
	writeFile(t, filepath.Join(dir, render.MongoPasswordFile), []byte("x\n"), 0o600)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, render.ComposeFile)},
		cli.WithWorkingDirectory(dir), cli.WithConsistency(true), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go: %v\n%s", err, compose)
	}
	return p, compose
}

func TestComposeLoads(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := v.config(t)
			files := renderVariant(t, v)
			p, raw := loadCompose(t, files)

			var top map[string]any
			if err := yaml.Unmarshal(raw, &top); err != nil {
				t.Fatal(err)
			}
			if _, ok := top["version"]; ok {
				t.Error("compose.yaml has a version key")
			}
			if p.Name != c.Project {
				t.Errorf("project %q, want %q", p.Name, c.Project)
			}

			tokens, _ := c.TokenReplicas()
			want := append([]string{"nginx", "registry"}, tokens...)
			if c.ManagedMongo() {
				want = append(want, "mongo")
			}
			sort.Strings(want)
			got := p.ServiceNames()
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Fatalf("services %v, want %v", got, want)
			}

			// nginx starts once every token server replica is healthy.
			for _, svc := range tokens {
				if dep, ok := p.Services["nginx"].DependsOn[svc]; !ok || dep.Condition != "service_healthy" {
					t.Errorf("nginx does not wait for %s to be healthy", svc)
				}
			}
			for name, s := range p.Services {
				if name == "nginx" {
					var ports []string
					for _, pc := range s.Ports {
						ports = append(ports, fmt.Sprintf("%s:%d", pc.Published, pc.Target))
					}
					if !slices.Equal(ports, []string{"80:80", "443:443"}) {
						t.Errorf("nginx ports %v, want 80:80 and 443:443", ports)
					}
				} else if len(s.Ports) > 0 || len(s.Expose) > 0 {
					t.Errorf("service %s publishes ports %v: only nginx may", name, s.Ports)
				}
				if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
					t.Errorf("service %s has no healthcheck", name)
				}
				if s.Restart != "unless-stopped" {
					t.Errorf("service %s restart %q", name, s.Restart)
				}
				for _, vol := range s.Volumes {
					if vol.Type != types.VolumeTypeBind {
						t.Errorf("service %s: volume %s is %s, want a bind mount", name, vol.Target, vol.Type)
						continue
					}
					if fi, err := os.Stat(vol.Source); err == nil && !fi.IsDir() {
						t.Errorf("service %s mounts the single file %s: mount its directory", name, vol.Source)
					}
				}
				for k := range s.Environment {
					if strings.Contains(strings.ToUpper(k), "PASSWORD") && !strings.HasSuffix(k, "_FILE") {
						t.Errorf("service %s has %s inline", name, k)
					}
				}
			}

			nginx := p.Services["nginx"]
			for _, dep := range []string{"registry", "regctl"} {
				if d, ok := nginx.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
					t.Errorf("nginx depends_on %s: %+v, want condition service_healthy", dep, d)
				}
			}
			regctl := p.Services["regctl"]
			if regctl.Build == nil || filepath.Base(regctl.Build.Context) != "build" {
				t.Errorf("regctl is not built from ./build: %+v", regctl.Build)
			}
			if c.ManagedMongo() {
				if d, ok := regctl.DependsOn["mongo"]; !ok || d.Condition != types.ServiceConditionHealthy {
					t.Errorf("regctl depends_on mongo: %+v", d)
				}
				mongo := p.Services["mongo"]
				if pf := mongo.Environment["MONGO_INITDB_ROOT_PASSWORD_FILE"]; pf == nil || !strings.HasPrefix(*pf, "/run/secrets/") {
					t.Errorf("mongo password is not a secret file: %v", mongo.Environment)
				}
				if len(mongo.Secrets) != 1 || p.Secrets[mongo.Secrets[0].Source].File == "" {
					t.Errorf("mongo secrets %+v", mongo.Secrets)
				}
			} else if len(p.Secrets) != 0 {
				t.Errorf("secrets without MongoDB: %v", p.Secrets)
			}
			if c.Database.Backend == config.BackendSQLite && !hasTarget(regctl, render.ContainerSQLiteDir) {
				t.Error("regctl has no SQLite data directory")
			}

			for _, s := range secretValues {
				if bytes.Contains(raw, []byte(s)) {
					t.Errorf("compose.yaml contains the secret %q inline", s)
				}
			}
		})
	}
}

func hasTarget(s types.ServiceConfig, target string) bool {
	for _, v := range s.Volumes {
		if v.Target == target {
			return true
		}
	}
	return false
}

// TestTokenServerOps checks what the rendered stack turns on in regctl
// serve: metrics on a port of their own, on every interface of the
// container (so a scraper on the compose network reaches them) but neither
// published nor proxied by nginx; the audit log in a writable, private bind
// mount of the install root; and a health check on the port nginx uses.
func TestTokenServerOps(t *testing.T) {
	moved := variant{"token-on-9101", func(c *config.Config) { c.Upstreams.Token = "regctl:9101" }}
	for _, v := range append(slices.Clone(variants), moved) {
		t.Run(v.name, func(t *testing.T) {
			files := renderVariant(t, v)
			var tok struct {
				Listen        string `yaml:"listen"`
				MetricsListen string `yaml:"metrics-listen"`
				AuditLog      string `yaml:"audit-log"`
			}
			if err := yaml.Unmarshal(render.Find(files, render.TokenConfFile).Data, &tok); err != nil {
				t.Fatal(err)
			}
			host, mport, err := net.SplitHostPort(tok.MetricsListen)
			if err != nil || host != "" {
				t.Errorf("metrics-listen %q: want :PORT, every interface of the container", tok.MetricsListen)
			}
			_, tport, _ := net.SplitHostPort(tok.Listen)
			if mport == "" || mport == tport {
				t.Errorf("metrics-listen %q shares the token port %s that nginx proxies", tok.MetricsListen, tport)
			}
			nginx := string(render.Find(files, render.NginxConfFile).Data)
			if strings.Contains(nginx, ":"+mport) {
				t.Errorf("nginx.conf mentions the metrics port %s", mport)
			}

			p, _ := loadCompose(t, files)
			regctl := p.Services["regctl"]
			if len(regctl.Ports) > 0 || len(regctl.Expose) > 0 {
				t.Errorf("regctl publishes %v / exposes %v", regctl.Ports, regctl.Expose)
			}
			if want := "http://127.0.0.1:" + tport + "/readyz"; !slices.Contains(regctl.HealthCheck.Test, want) {
				t.Errorf("regctl healthcheck %v, want /readyz on the token port (%s)", regctl.HealthCheck.Test, want)
			}
			var mount *types.ServiceVolumeConfig
			for i, vol := range regctl.Volumes {
				if vol.Target == path.Dir(tok.AuditLog) {
					mount = &regctl.Volumes[i]
				}
			}
			switch {
			case mount == nil:
				t.Fatalf("audit-log %s is not in a mounted directory: %+v", tok.AuditLog, regctl.Volumes)
			case mount.ReadOnly:
				t.Errorf("the audit log's mount %s is read-only", mount.Target)
			case filepath.Base(filepath.Dir(mount.Source)) != path.Base(path.Dir(render.TokenLogDir)) || filepath.Base(mount.Source) != path.Base(render.TokenLogDir):
				t.Errorf("the audit log's mount comes from %s, want ROOT/%s", mount.Source, render.TokenLogDir)
			}
			if d := render.Find(files, render.TokenLogDir); d == nil || !d.Dir || d.Mode != render.ModeSecretDir {
				t.Errorf("%s is not rendered as a 0700 directory: %+v", render.TokenLogDir, d)
			}
			if want := "regctl audit tail --file ROOT/" + render.AuditLogFile; !bytes.Contains(render.Find(files, render.TokenConfFile).Data, []byte(want)) {
				t.Errorf("token-server.yaml does not say where the audit log is on the host (%s)", want)
			}
		})
	}
}

// TestTrustedProxyIsNginx reads both rendered files: token-server.yaml
// trusts exactly one address, /32, and it is nginx's fixed ipv4_address in
// compose.yaml, on the network's pinned subnet. No other container can get
// that address: Docker assigns theirs from ip_range, which neither nginx's
// address nor the gateway is in. So no other container, and not the host
// through the gateway, can set X-Forwarded-For.
func TestTrustedProxyIsNginx(t *testing.T) {
	small := variant{"subnet-28", func(c *config.Config) { c.Network.Subnet = "10.210.7.16/28" }}
	for _, v := range append(slices.Clone(variants), small) {
		t.Run(v.name, func(t *testing.T) {
			c := v.config(t)
			files := renderVariant(t, v)
			var tok struct {
				TrustedProxy []string `yaml:"trusted-proxy"`
			}
			if err := yaml.Unmarshal(render.Find(files, render.TokenConfFile).Data, &tok); err != nil {
				t.Fatal(err)
			}
			p, _ := loadCompose(t, files)

			net, ok := p.Networks["default"]
			if !ok || len(net.Ipam.Config) != 1 {
				t.Fatalf("compose.yaml pins no subnet for the default network: %+v", p.Networks)
			}
			pool := net.Ipam.Config[0]
			subnet, err1 := netip.ParsePrefix(pool.Subnet)
			ipRange, err2 := netip.ParsePrefix(pool.IPRange)
			gateway, err3 := netip.ParseAddr(pool.Gateway)
			if err := errors.Join(err1, err2, err3); err != nil {
				t.Fatalf("ipam config %+v: %v", pool, err)
			}
			if subnet.String() != c.Network.Subnet {
				t.Errorf("subnet %s, want network.subnet %s", subnet, c.Network.Subnet)
			}
			if net.EnableIPv6 == nil || *net.EnableIPv6 {
				t.Error("the network may have IPv6 addresses, which the token server does not trust")
			}
			if !subnet.Contains(ipRange.Addr()) || ipRange.Bits() <= subnet.Bits() {
				t.Errorf("ip_range %s is not inside subnet %s", ipRange, subnet)
			}
			if !subnet.Contains(gateway) || ipRange.Contains(gateway) {
				t.Errorf("gateway %s: want it in %s, outside ip_range %s", gateway, subnet, ipRange)
			}

			var nginx netip.Addr
			for name, s := range p.Services {
				if len(s.Networks) != 1 {
					t.Errorf("service %s is on networks %v, want the default one only", name, s.Networks)
				}
				sn, ok := s.Networks["default"]
				addr := ""
				if ok && sn != nil {
					addr = sn.Ipv4Address
				}
				switch {
				case name == "nginx":
					nginx, _ = netip.ParseAddr(addr)
				case name == "mongo":
					// For regctl on the host: outside ip_range, not nginx's.
					a, err := netip.ParseAddr(addr)
					if err != nil || !subnet.Contains(a) || ipRange.Contains(a) || a == gateway || a.String() == render.NewNetworkData(c).Nginx {
						t.Errorf("mongo's fixed address %q: want one in %s, outside ip_range %s, not the gateway's or nginx's", addr, subnet, ipRange)
					}
				case addr != "":
					t.Errorf("service %s has the fixed address %s: only nginx and mongo may", name, addr)
				}
			}
			switch {
			case !nginx.IsValid():
				t.Fatalf("nginx has no fixed ipv4_address: %+v", p.Services["nginx"].Networks)
			case !subnet.Contains(nginx) || nginx == subnet.Addr() || nginx == gateway:
				t.Errorf("nginx's address %s: want a host address in %s other than the gateway %s", nginx, subnet, gateway)
			case ipRange.Contains(nginx):
				t.Errorf("nginx's address %s is in ip_range %s: another container may take it first", nginx, ipRange)
			}

			if want := []string{netip.PrefixFrom(nginx, 32).String()}; !slices.Equal(tok.TrustedProxy, want) {
				t.Errorf("token-server.yaml trusted-proxy %q, want nginx's address alone %q", tok.TrustedProxy, want)
			}
		})
	}
}
