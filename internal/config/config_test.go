package config

import (
	"strings"
	"testing"
	"time"
)

func valid() Config {
	c := Defaults()
	c.Domains.Registry = "registry.example.com"
	return c
}

func TestDefaultsWithDomainValidate(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults plus a domain: %v", err)
	}
	if !c.SingleDomain() || c.AuthDomain() != "registry.example.com" || c.Realm() != "https://registry.example.com/auth/token" {
		t.Errorf("single domain: auth %q realm %q", c.AuthDomain(), c.Realm())
	}
	if c.TokenService() != "registry.example.com" {
		t.Errorf("service defaults to the registry domain, got %q", c.TokenService())
	}
	c.Domains.Auth = "auth.example.com"
	if c.Realm() != "https://auth.example.com/auth/token" || len(c.Names()) != 2 {
		t.Errorf("two domains: realm %q names %v", c.Realm(), c.Names())
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantKey string
	}{
		{"no registry domain", func(c *Config) { c.Domains.Registry = "" }, "domains.registry"},
		{"nginx injection", func(c *Config) { c.Domains.Registry = "a.example; include /etc/passwd" }, "domains.registry"},
		{"brace", func(c *Config) { c.Domains.Registry = "a.example{" }, "domains.registry"},
		{"quote", func(c *Config) { c.Domains.Registry = `a.example"` }, "domains.registry"},
		{"newline", func(c *Config) { c.Domains.Registry = "a.example\nserver_name x" }, "domains.registry"},
		{"space", func(c *Config) { c.Domains.Registry = "a example.com" }, "domains.registry"},
		{"uppercase", func(c *Config) { c.Domains.Registry = "Registry.example.com" }, "domains.registry"},
		{"ip address", func(c *Config) { c.Domains.Registry = "192.0.2.1" }, "domains.registry"},
		{"label too long", func(c *Config) { c.Domains.Registry = strings.Repeat("a", 64) + ".example" }, "domains.registry"},
		{"leading hyphen", func(c *Config) { c.Domains.Registry = "-a.example" }, "domains.registry"},
		{"bad auth domain", func(c *Config) { c.Domains.Auth = "auth_example.com" }, "domains.auth"},
		{"auth equals registry", func(c *Config) { c.Domains.Auth = c.Domains.Registry }, "domains.auth"},
		{"email display name", func(c *Config) { c.ACME.Email = "Ops <ops@example.com>" }, "acme.email"},
		{"email newline", func(c *Config) { c.ACME.Email = "ops@example.com\n" }, "acme.email"},
		{"email no domain", func(c *Config) { c.ACME.Email = "ops" }, "acme.email"},
		{"http CA", func(c *Config) { c.ACME.CA = "http://ca.example/dir" }, "acme.ca"},
		{"CA shell", func(c *Config) { c.ACME.CA = "https://ca.example/dir;reboot" }, "acme.ca"},
		{"CA percent", func(c *Config) { c.ACME.CA = "https://ca.example/d%69r" }, "acme.ca"},
		{"email shell", func(c *Config) { c.ACME.Email = "a$(reboot)@example.com" }, "acme.email"},
		{"relative root", func(c *Config) { c.Root = "opt/regctl" }, "root"},
		{"unclean root", func(c *Config) { c.Root = "/opt//regctl/" }, "root"},
		{"root with space", func(c *Config) { c.Root = "/opt/reg ctl" }, "root"},
		{"root with semicolon", func(c *Config) { c.Root = "/opt/a;b" }, "root"},
		{"root slash", func(c *Config) { c.Root = "/" }, "root"},
		{"project", func(c *Config) { c.Project = "My Project" }, "project"},
		{"profile", func(c *Config) { c.TLS.Profile = "old" }, "tls.profile"},
		{"preload short max-age", func(c *Config) { c.TLS.HSTSPreload = true; c.TLS.HSTSMaxAge = 300 }, "tls.hsts-preload"},
		{"issuer quote", func(c *Config) { c.Token.Issuer = `a"b` }, "token.issuer"},
		{"lifetime", func(c *Config) { c.Token.Lifetime = 0 }, "token.lifetime"},
		{"lifetime long", func(c *Config) { c.Token.Lifetime = 48 * time.Hour }, "token.lifetime"},
		{"lifetime under serve's 10s", func(c *Config) { c.Token.Lifetime = 5 * time.Second }, "token.lifetime"},
		{"fail2ban maxretry 0", func(c *Config) { c.Fail2ban.MaxRetry = 0 }, "fail2ban.maxretry"},
		{"fail2ban findtime short", func(c *Config) { c.Fail2ban.FindTime = 30 * time.Second }, "fail2ban.findtime"},
		{"fail2ban bantime short", func(c *Config) { c.Fail2ban.BanTime = 5 * time.Second }, "fail2ban.bantime"},
		{"fail2ban bantime fraction", func(c *Config) { c.Fail2ban.BanTime = 90500 * time.Millisecond }, "fail2ban.bantime"},
		{"alg", func(c *Config) { c.Token.KeyAlgorithm = "hs256" }, "token.key-algorithm"},
		{"log format", func(c *Config) { c.Token.LogFormat = "xml" }, "token.log-format"},
		{"key format", func(c *Config) { c.Token.KeyFormat = "kid" }, "token.key-format"},
		{"jwks on distribution 2", func(c *Config) { c.Token.KeyFormat = KeyFormatJWKS; c.Images.Registry = "registry:2.8.3" }, "token.key-format"},
		{"backend", func(c *Config) { c.Database.Backend = "postgres" }, "database.backend"},
		{"url with sqlite", func(c *Config) { c.Database.Backend = BackendSQLite; c.Database.URL = "mongodb://db/regctl" }, "database.url"},
		{"url scheme", func(c *Config) { c.Database.URL = "mysql://db/regctl" }, "database.url"},
		{"driver", func(c *Config) { c.Storage.Driver = "gcs" }, "storage.driver"},
		{"fs path", func(c *Config) { c.Storage.Filesystem.Path = "data" }, "storage.filesystem.path"},
		{"s3 bucket", func(c *Config) {
			c.Storage.Driver = DriverS3
			c.Storage.S3.Region = "us-east-1"
			c.Storage.S3.Bucket = "B"
		}, "storage.s3.bucket"},
		{"s3 region", func(c *Config) { c.Storage.Driver = DriverS3; c.Storage.S3.Bucket = "images" }, "storage.s3.region"},
		{"s3 half credentials", func(c *Config) {
			c.Storage.Driver = DriverS3
			c.Storage.S3.Bucket, c.Storage.S3.Region, c.Storage.S3.AccessKey = "images", "eu-west-1", "AKIA"
		}, "storage.s3.access-key"},
		{"s3 endpoint", func(c *Config) {
			c.Storage.Driver = DriverS3
			c.Storage.S3.Bucket, c.Storage.S3.Region, c.Storage.S3.Endpoint = "images", "eu-west-1", "minio:9000"
		}, "storage.s3.endpoint"},
		{"ssh port", func(c *Config) { c.SSH.Port = 70000 }, "ssh.port"},
		{"upstream", func(c *Config) { c.Upstreams.Registry = "registry" }, "upstreams.registry"},
		{"upstream port", func(c *Config) { c.Upstreams.Token = "regctl:0" }, "upstreams.token"},
		{"image", func(c *Config) { c.Images.Nginx = "nginx latest" }, "images.nginx"},
		{"subnet empty", func(c *Config) { c.Network.Subnet = "" }, "network.subnet"},
		{"subnet address", func(c *Config) { c.Network.Subnet = "172.31.255.2" }, "network.subnet"},
		{"subnet ipv6", func(c *Config) { c.Network.Subnet = "fd00:1::/64" }, "network.subnet"},
		{"subnet ipv4-mapped", func(c *Config) { c.Network.Subnet = "::ffff:172.31.255.0/120" }, "network.subnet"},
		{"subnet public", func(c *Config) { c.Network.Subnet = "203.0.113.0/24" }, "network.subnet"},
		{"subnet carrier-grade NAT", func(c *Config) { c.Network.Subnet = "100.64.0.0/24" }, "network.subnet"},
		{"subnet loopback", func(c *Config) { c.Network.Subnet = "127.0.0.0/24" }, "network.subnet"},
		{"subnet too large", func(c *Config) { c.Network.Subnet = "10.0.0.0/8" }, "network.subnet"},
		{"subnet too small", func(c *Config) { c.Network.Subnet = "192.168.7.0/29" }, "network.subnet"},
		{"subnet host bits", func(c *Config) { c.Network.Subnet = "172.31.255.1/24" }, "network.subnet"},
		{"subnet injection", func(c *Config) { c.Network.Subnet = "172.31.255.0/24\n    ip_range: 0.0.0.0/0" }, "network.subnet"},

		// Injection: every value that lands in a template (nginx.conf,
		// compose.yaml, the registry's and token server's YAML, the
		// renewal job's shell command line, fail2ban's jail) is refused
		// if it could end a directive, a value or a command.
		{"domain closes the server block", func(c *Config) { c.Domains.Registry = "a.example\n}" }, "domains.registry"},
		{"domain with trailing space", func(c *Config) { c.Domains.Registry = "a.example " }, "domains.registry"},
		{"domain with tab", func(c *Config) { c.Domains.Registry = "a.example\tinclude" }, "domains.registry"},
		{"domain with NUL", func(c *Config) { c.Domains.Registry = "a.example\x00" }, "domains.registry"},
		{"domain with dollar", func(c *Config) { c.Domains.Registry = "$host.example" }, "domains.registry"},
		{"domain with wildcard", func(c *Config) { c.Domains.Registry = "*.example.com" }, "domains.registry"},
		{"domain with unicode dot", func(c *Config) { c.Domains.Registry = "a。example" }, "domains.registry"},
		{"auth domain injection", func(c *Config) { c.Domains.Auth = "auth.example; include /etc/passwd" }, "domains.auth"},
		{"auth domain newline", func(c *Config) { c.Domains.Auth = "auth.example\n}" }, "domains.auth"},
		{"email newline in local part", func(c *Config) { c.ACME.Email = "ops\n@example.com" }, "acme.email"},
		{"email header injection", func(c *Config) { c.ACME.Email = "ops@example.com\r\nBcc: x@example.com" }, "acme.email"},
		{"email semicolon", func(c *Config) { c.ACME.Email = "ops;reboot@example.com" }, "acme.email"},
		{"email space", func(c *Config) { c.ACME.Email = "ops @example.com" }, "acme.email"},
		{"email domain injection", func(c *Config) { c.ACME.Email = "ops@example.com;reboot" }, "acme.email"},
		{"email backquote", func(c *Config) { c.ACME.Email = "`reboot`@example.com" }, "acme.email"},
		{"CA newline", func(c *Config) { c.ACME.CA = "https://ca.example/dir\n* * * * * root reboot" }, "acme.ca"},
		{"CA space", func(c *Config) { c.ACME.CA = "https://ca.example/dir --insecure" }, "acme.ca"},
		{"CA dollar", func(c *Config) { c.ACME.CA = "https://ca.example/$(reboot)" }, "acme.ca"},
		{"root with dollar", func(c *Config) { c.Root = "/opt/$HOME" }, "root"},
		{"root with backquote", func(c *Config) { c.Root = "/opt/`reboot`" }, "root"},
		{"root with newline", func(c *Config) { c.Root = "/opt/regctl\n* * * * * root reboot" }, "root"},
		{"root with dot-dot", func(c *Config) { c.Root = "/opt/../etc" }, "root"},
		{"root with quote", func(c *Config) { c.Root = `/opt/re"gctl` }, "root"},
		{"fs path with space", func(c *Config) { c.Storage.Filesystem.Path = "/srv/my registry" }, "storage.filesystem.path"},
		{"fs path with semicolon", func(c *Config) { c.Storage.Filesystem.Path = "/srv/a;b" }, "storage.filesystem.path"},
		{"fs path with dollar", func(c *Config) { c.Storage.Filesystem.Path = "/srv/$x" }, "storage.filesystem.path"},
		{"fs path with brace", func(c *Config) { c.Storage.Filesystem.Path = "/srv/a}, target: /etc, x: {" }, "storage.filesystem.path"},
		{"s3 root directory with space", func(c *Config) {
			c.Storage.Driver = DriverS3
			c.Storage.S3.Bucket, c.Storage.S3.Region, c.Storage.S3.RootDirectory = "images", "eu-west-1", "/reg istry"
		}, "storage.s3.root-directory"},
		{"s3 region newline", func(c *Config) {
			c.Storage.Driver = DriverS3
			c.Storage.S3.Bucket, c.Storage.S3.Region = "images", "eu-west-1\n  secure: false"
		}, "storage.s3.region"},
		{"s3 endpoint quote", func(c *Config) {
			c.Storage.Driver = DriverS3
			c.Storage.S3.Bucket, c.Storage.S3.Region, c.Storage.S3.Endpoint = "images", "eu-west-1", `https://s3.example.com"`
		}, "storage.s3.endpoint"},
		{"s3 secret newline", func(c *Config) {
			c.Storage.Driver = DriverS3
			c.Storage.S3.Bucket, c.Storage.S3.Region, c.Storage.S3.AccessKey, c.Storage.S3.SecretKey = "images", "eu-west-1", "AK", "s\nx"
		}, "storage.s3.secret-key"},
		{"issuer newline", func(c *Config) { c.Token.Issuer = "regctl\nservice: x" }, "token.issuer"},
		{"issuer space", func(c *Config) { c.Token.Issuer = "reg ctl" }, "token.issuer"},
		{"service semicolon", func(c *Config) { c.Token.Service = "registry;x" }, "token.service"},
		{"database URL newline", func(c *Config) { c.Database.URL = "mongodb://db.example/regctl\nlisten: 0.0.0.0:80" }, "database.url"},
		{"database URL quote", func(c *Config) { c.Database.URL = `mongodb://db.example/regctl"` }, "database.url"},
		{"project newline", func(c *Config) { c.Project = "regctl\nservices:" }, "project"},
		{"project dollar", func(c *Config) { c.Project = "reg$ctl" }, "project"},
		{"upstream injection", func(c *Config) { c.Upstreams.Registry = "registry:5000; include /etc/passwd" }, "upstreams.registry"},
		{"upstream newline", func(c *Config) { c.Upstreams.Token = "regctl:5001\n}" }, "upstreams.token"},
		{"image newline", func(c *Config) { c.Images.Registry = "registry:3.0.0\n    privileged: true" }, "images.registry"},
		{"image quote", func(c *Config) { c.Images.Nginx = `nginx"` }, "images.nginx"},
		{"mongo image brace", func(c *Config) { c.Images.Mongo = "mongo:8.0}" }, "images.mongo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.HasPrefix(err.Error(), tt.wantKey+": ") && !strings.Contains(err.Error(), "\n"+tt.wantKey+": ") {
				t.Errorf("error does not name %s: %v", tt.wantKey, err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	c := valid()
	c.Domains.Auth = "auth.example.com"
	c.ACME.Email = "ops@example.com"
	c.TLS.Profile = ProfileIntermediate
	c.TLS.HSTSPreload = true
	c.Database.Backend = BackendSQLite
	c.Storage.Driver = DriverS3
	c.Storage.S3 = S3{Bucket: "images", Region: "eu-west-1", Endpoint: "https://s3.example.com", AccessKey: "AKIA", SecretKey: "s/e+cret", RootDirectory: "/registry", Secure: true}
	c.Upstreams = Upstreams{Registry: "127.0.0.1:15000", Token: "[::1]:15001"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, subnet := range []string{"10.0.0.0/16", "10.210.7.0/24", "172.16.0.0/16", "172.31.255.240/28", "192.168.99.0/24"} {
		c.Network.Subnet = subnet
		if err := c.Validate(); err != nil {
			t.Errorf("network.subnet %s: %v", subnet, err)
		}
	}
}

func TestValidateReportsAll(t *testing.T) {
	c := valid()
	c.Domains.Registry = "bad domain"
	c.TLS.Profile = "x"
	c.SSH.Port = 0
	err := c.Validate()
	for _, key := range []string{"domains.registry", "tls.profile", "ssh.port"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

func TestKeys(t *testing.T) {
	keys := Keys()
	byName := map[string]Key{}
	for _, k := range keys {
		byName[k.Name] = k
	}
	for name, env := range map[string]string{
		"domains.registry":      "REGCTL_DOMAINS_REGISTRY",
		"tls.hsts-max-age":      "REGCTL_TLS_HSTS_MAX_AGE",
		"storage.s3.bucket":     "REGCTL_STORAGE_S3_BUCKET",
		"token.lifetime":        "REGCTL_TOKEN_LIFETIME",
		"root":                  "REGCTL_ROOT",
		"upstreams.token":       "REGCTL_UPSTREAMS_TOKEN",
		"database.backend":      "REGCTL_DATABASE_BACKEND",
		"storage.s3.secret-key": "REGCTL_STORAGE_S3_SECRET_KEY",
	} {
		k, ok := byName[name]
		if !ok {
			t.Errorf("no key %s", name)
			continue
		}
		if k.Env != env {
			t.Errorf("%s: env %s, want %s", name, k.Env, env)
		}
	}
	if byName["token.lifetime"].Default != 5*time.Minute {
		t.Errorf("token.lifetime default %v", byName["token.lifetime"].Default)
	}
	for _, k := range []string{"domains", "domains.registry", "TLS.Profile", "storage.s3"} {
		if !Known(k) {
			t.Errorf("Known(%q) = false", k)
		}
	}
	for _, k := range []string{"domain", "domains.registr", "tls.ciphers", "store", "listen"} {
		if Known(k) {
			t.Errorf("Known(%q) = true", k)
		}
	}
}
