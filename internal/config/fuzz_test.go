package config_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/templates"
)

// decode reads regctl.yaml as the CLI does (viper: YAML, then mapstructure
// with weak typing, durations from strings, unknown keys refused) on top
// of the defaults.
func decode(data []byte) (config.Config, error) {
	c := config.Defaults()
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return c, err
	}
	m = viperKeys(m)
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           &c,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	})
	if err != nil {
		return c, err
	}
	return c, dec.Decode(m)
}

// viperKeys does what viper does to a decoded file before mapstructure
// sees it: every mapping key becomes a lowercase string (a null key "").
// mapstructure v2.5.0 panics on a map whose key is not a string (found by
// this fuzzer: "domains: {&a , registry: x}" has a null key); regctl never
// hands it one, because viper stringifies keys first.
func viperKeys(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = viperValue(v)
	}
	return out
}

func viperValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return viperKeys(v)
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks := ""
			if k != nil {
				ks = fmt.Sprint(k)
			}
			out[strings.ToLower(ks)] = viperValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = viperValue(e)
		}
		return out
	}
	return v
}

var (
	fuzzSecrets = render.Secrets{MongoPassword: "mongo-pw", RegistryHTTPSecret: "http-secret", TokenBundle: []byte("bundle"), TokenJWKS: []byte("{}")}
	fuzzEnv     = render.Env{ConfigPath: "/etc/regctl/regctl.yaml", BinaryPath: "/usr/local/bin/regctl", Binary: []byte("regctl")}
	serverName  = regexp.MustCompile(`^\s*server_name\s+(.*);$`)
	shellMeta   = regexp.MustCompile("[;|&$`()<>\\\\'\"*?!{}\\s]")
)

// FuzzConfig drives regctl.yaml through decoding, validation and
// rendering. A configuration Validate refuses is refused with one line per
// problem, each naming a key. One it accepts renders, and every value lands
// where it belongs and nowhere else: nginx gets exactly its server blocks
// and names, the YAML files parse back to the configured issuer, service,
// realm and services (only nginx publishing ports), and the renewal job's
// command line splits into exactly the expected words.
func FuzzConfig(f *testing.F) {
	example := string(templates.Example)
	for _, s := range []string{
		example,
		"domains: {registry: registry.example.com, auth: auth.example.com}\nacme: {email: ops@example.com}\n",
		"domains: {registry: \"a.example; include /etc/passwd\"}\n",
		"domains: {registry: \"a.example\\n}\"}\n",
		"domains: {registry: a.example}\nacme: {email: \"ops@example.com\\nX: y\"}\n",
		"domains: {registry: a.example}\nroot: \"/opt/reg ctl\"\n",
		"domains: {registry: a.example}\nroot: /opt/a;b$c\n",
		"domains: {registry: a.example}\nstorage: {driver: s3, s3: {bucket: images, region: eu-west-1, endpoint: \"https://s3.example.com\", access-key: AK, secret-key: \"s/e+c\", root-directory: /registry}}\n",
		"domains: {registry: a.example}\ndatabase: {backend: sqlite}\ntoken: {issuer: \"iss:x/y\", service: svc, lifetime: 10m}\n",
		"domains: {registry: a.example}\ndatabase: {url: \"mongodb://u:p@db.example:27017/regctl?authSource=admin\"}\n",
		"domains: {registry: a.example}\nupstreams: {registry: \"127.0.0.1:15000\", token: \"[::1]:15001\"}\nssh: {port: 2222}\n",
		"domains: {registry: a.example}\nimages: {nginx: \"nginx:1.28-alpine\\ncommand: x\"}\n",
		"domains: {registry: a.example}\ntoken: {extra-services: [b.example, \"ci:registry\"]}\n",
		"domains: {registry: a.example}\ntls: {profile: intermediate, hsts-max-age: 31536000, hsts-preload: true}\n",
		"domains: {registry: a.example}\nproject: \"x\\nservices:\"\n",
		"domains: {registry: a.example}\ntoken: {lifetime: forever}\n",
		"domains: {registry: a.example}\ntls: {ciphers: ALL}\n",
		"domains: {registry: a.example}\nnetwork: {subnet: 10.1.2.16/28}\n",
		"domains: {registry: a.example}\nnetwork: {subnet: \"172.31.255.0/24\\n    ip_range: 0.0.0.0/0\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decode(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				key, _, ok := strings.Cut(line, ": ")
				if !ok || !config.Known(key) {
					t.Fatalf("validation error line does not start with a key: %q", line)
				}
			}
			return
		}
		files, err := render.Files(&c, fuzzSecrets, fuzzEnv)
		if err != nil {
			t.Fatalf("a valid configuration does not render: %v", err)
		}
		get := func(p string) string {
			f := render.Find(files, p)
			if f == nil {
				t.Fatalf("no %s", p)
			}
			return string(f.Data)
		}
		checkNginx(t, &c, get(render.NginxConfFile))
		checkRegistry(t, &c, get(render.RegistryConfFile))
		checkToken(t, &c, get(render.TokenConfFile))
		checkCompose(t, &c, get(render.ComposeFile))
		checkTrustedProxy(t, &c, get(render.ComposeFile), get(render.TokenConfFile))
		checkCron(t, &c, get(render.RenewCronFile))
	})
}

func checkNginx(t *testing.T, c *config.Config, conf string) {
	var names []string
	for _, line := range strings.Split(conf, "\n") {
		if m := serverName.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		}
	}
	want := append([]string{"_", "_"}, c.Names()...)
	if !slices.Equal(names, want) {
		t.Fatalf("nginx server_name values %q, want %q", names, want)
	}
	// The names' servers, the port-80 and default TLS servers, and the
	// health check's.
	if n := strings.Count(conf, "server {"); n != len(want)+1 {
		t.Fatalf("nginx.conf has %d server blocks, want %d", n, len(want)+1)
	}
	if strings.Count(conf, "{") != strings.Count(conf, "}") {
		t.Fatal("nginx.conf braces do not balance")
	}
}

func checkRegistry(t *testing.T, c *config.Config, conf string) {
	var reg struct {
		Auth struct {
			Token map[string]string `yaml:"token"`
		} `yaml:"auth"`
		HTTP map[string]any `yaml:"http"`
	}
	if err := yaml.Unmarshal([]byte(conf), &reg); err != nil {
		t.Fatalf("registry config.yml does not parse: %v", err)
	}
	tok := reg.Auth.Token
	if tok["issuer"] != c.Token.Issuer || tok["service"] != c.TokenService() || tok["realm"] != c.Realm() || len(tok) != 5 {
		t.Fatalf("registry auth.token %v", tok)
	}
	if reg.HTTP["host"] != "https://"+c.Domains.Registry {
		t.Fatalf("registry http.host %v", reg.HTTP["host"])
	}
	topLevel(t, conf, "version", "log", "storage", "http", "health", "auth")
}

func checkToken(t *testing.T, c *config.Config, conf string) {
	var tok map[string]any
	if err := yaml.Unmarshal([]byte(conf), &tok); err != nil {
		t.Fatalf("token-server.yaml does not parse: %v", err)
	}
	var services struct {
		Service []string `yaml:"service"`
	}
	_ = yaml.Unmarshal([]byte(conf), &services)
	if tok["issuer"] != c.Token.Issuer || !slices.Equal(services.Service, append([]string{c.TokenService()}, c.Token.ExtraServices...)) || tok["store"] != render.StoreURL(c, fuzzSecrets) {
		t.Fatalf("token-server.yaml %v", tok)
	}
	topLevel(t, conf, "listen", "issuer", "service", "keys", "store", "token-lifetime", "refresh-lifetime", "key-format", "trusted-proxy", "log-format",
		"metrics-listen", "audit-log")
}

func checkCompose(t *testing.T, c *config.Config, conf string) {
	var cf struct {
		Name     string `yaml:"name"`
		Services map[string]map[string]any
	}
	if err := yaml.Unmarshal([]byte(conf), &cf); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	want := []string{"nginx", "regctl", "registry"}
	if c.ManagedMongo() {
		want = append(want, "mongo")
	}
	var got []string
	for name, s := range cf.Services {
		got = append(got, name)
		if _, ok := s["ports"]; ok && name != "nginx" {
			t.Fatalf("service %s publishes ports", name)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) || cf.Name != c.Project {
		t.Fatalf("compose project %q services %v, want %q %v", cf.Name, got, c.Project, want)
	}
	if img := cf.Services["nginx"]["image"]; img != c.Images.Nginx {
		t.Fatalf("nginx image %v, want %q", img, c.Images.Nginx)
	}
}

// checkTrustedProxy: the token server trusts nginx's fixed address alone,
// and it lies in network.subnet.
func checkTrustedProxy(t *testing.T, c *config.Config, compose, token string) {
	var cf struct {
		Services struct {
			Nginx struct {
				Networks struct {
					Default struct {
						IPv4Address string `yaml:"ipv4_address"`
					}
				}
			}
		}
		Networks struct {
			Default struct {
				IPAM struct {
					Config []struct{ Subnet string }
				}
			}
		}
	}
	var tok struct {
		TrustedProxy []string `yaml:"trusted-proxy"`
	}
	if err := yaml.Unmarshal([]byte(compose), &cf); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(token), &tok); err != nil {
		t.Fatal(err)
	}
	nginx, err := netip.ParseAddr(cf.Services.Nginx.Networks.Default.IPv4Address)
	subnet := netip.MustParsePrefix(c.Network.Subnet)
	if err != nil || !subnet.Contains(nginx) {
		t.Fatalf("nginx's ipv4_address %q is not in network.subnet %s", cf.Services.Nginx.Networks.Default.IPv4Address, subnet)
	}
	if pools := cf.Networks.Default.IPAM.Config; len(pools) != 1 || pools[0].Subnet != c.Network.Subnet {
		t.Fatalf("compose network subnets %+v, want %s", pools, c.Network.Subnet)
	}
	if want := []string{nginx.String() + "/32"}; !slices.Equal(tok.TrustedProxy, want) {
		t.Fatalf("trusted-proxy %q, want %q", tok.TrustedProxy, want)
	}
}

func checkCron(t *testing.T, c *config.Config, cron string) {
	var jobs []string
	for _, line := range strings.Split(cron, "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "=") && !strings.Contains(line, " root ") {
			continue
		}
		jobs = append(jobs, line)
	}
	if len(jobs) != 1 {
		t.Fatalf("renewal cron has %d jobs:\n%s", len(jobs), cron)
	}
	fields := strings.Fields(jobs[0])
	want := append([]string{"root", fuzzEnv.BinaryPath, "certs", "renew", "--config", fuzzEnv.ConfigPath}, render.CertsFlags(c)...)
	want = append(want, ">>"+c.Root+"/logs/renew.log", "2>&1")
	if len(fields) < 5 || !reflect.DeepEqual(fields[5:], want) {
		t.Fatalf("renewal job %q, want the words %q after the schedule", jobs[0], want)
	}
	for _, w := range want[:len(want)-2] {
		if shellMeta.MatchString(w) {
			t.Fatalf("renewal job word %q has a shell metacharacter", w)
		}
	}
}

// topLevel checks the YAML document's top-level keys.
func topLevel(t *testing.T, doc string, keys ...string) {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(keys)
	if !slices.Equal(got, keys) {
		t.Fatalf("top-level keys %v, want %v", got, keys)
	}
}
