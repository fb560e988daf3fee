// Package config is regctl.yaml: the one file `regctl init` and `regctl
// render` work from. It holds the typed settings, their documented defaults
// and their validation, and the token server's settings (TokenServer) that
// regctl.yaml renders into token-server.yaml and `regctl serve` runs with,
// checked by one Validate for both. It does not read files or the environment itself:
// the CLI layer decodes viper's settings into a Config (keys are the
// `mapstructure` tags below, so `domains.registry` is also REGCTL_DOMAINS_REGISTRY)
// and calls Validate before anything is written.
package config

import (
	"net"
	"strconv"
	"time"
)

// Config is the whole of regctl.yaml.
type Config struct {
	// Root is the install root: rendered files, secrets, keys,
	// certificates and data live below it.
	Root string `mapstructure:"root"`
	// Project is the docker compose project name.
	Project   string    `mapstructure:"project"`
	Domains   Domains   `mapstructure:"domains"`
	ACME      ACME      `mapstructure:"acme"`
	TLS       TLS       `mapstructure:"tls"`
	Token     Token     `mapstructure:"token"`
	Database  Database  `mapstructure:"database"`
	Storage   Storage   `mapstructure:"storage"`
	SSH       SSH       `mapstructure:"ssh"`
	Fail2ban  Fail2ban  `mapstructure:"fail2ban"`
	Upstreams Upstreams `mapstructure:"upstreams"`
	Network   Network   `mapstructure:"network"`
	Images    Images    `mapstructure:"images"`
}

// Domains are the public names. With Auth empty, one name serves both the
// registry and the token endpoint (under /auth).
type Domains struct {
	Registry string `mapstructure:"registry"`
	Auth     string `mapstructure:"auth"`
}

// ACME is the certificate authority account.
type ACME struct {
	Email string `mapstructure:"email"`
	CA    string `mapstructure:"ca"`
}

// TLS profiles.
const (
	ProfileModern       = "modern"
	ProfileIntermediate = "intermediate"
)

// TLS selects the Mozilla profile and HSTS.
type TLS struct {
	Profile string `mapstructure:"profile"`
	// HSTSMaxAge is the Strict-Transport-Security max-age in seconds; 0
	// sends no HSTS header.
	HSTSMaxAge int `mapstructure:"hsts-max-age"`
	// HSTSPreload adds includeSubDomains and preload. Only for operators
	// who mean to submit the domain to the browsers' preload list.
	HSTSPreload bool `mapstructure:"hsts-preload"`
}

// Token is the token server's identity and token lifetimes.
type Token struct {
	Issuer string `mapstructure:"issuer"`
	// Service is the registry's auth.token.service; empty means the
	// registry domain.
	Service string `mapstructure:"service"`
	// ExtraServices are the auth.token.service names of other registries
	// that use this token server (their realm is this host's token
	// endpoint); rules with a service condition tell them apart.
	ExtraServices   []string      `mapstructure:"extra-services"`
	Lifetime        time.Duration `mapstructure:"lifetime"`
	RefreshLifetime time.Duration `mapstructure:"refresh-lifetime"`
	KeyAlgorithm    string        `mapstructure:"key-algorithm"`
	// KeyFormat is how tokens name their signing key, and so what the
	// registry is configured to verify them with: KeyFormatX5C
	// (rootcertbundle; every registry version) or KeyFormatJWKS (jwks
	// only; distribution 3).
	KeyFormat string `mapstructure:"key-format"`
	// Replicas is how many `regctl serve` containers run on this host
	// (compose services regctl, regctl-2, ...), behind nginx.
	Replicas int `mapstructure:"replicas"`
	// LogFormat is regctl serve's log format; the fail2ban filter matches
	// both.
	LogFormat string `mapstructure:"log-format"`
}

// Store backends.
const (
	BackendMongo  = "mongo"
	BackendSQLite = "sqlite"
)

// Database selects the store behind the token server.
type Database struct {
	// Backend is mongo (a MongoDB container with authentication) or
	// sqlite (an embedded file, no database container).
	Backend string `mapstructure:"backend"`
	// URL is an external MongoDB (mongodb:// or mongodb+srv://). Empty
	// means the store runs on this host, as Backend says. Its password is
	// a secret.
	URL string `mapstructure:"url" secret:"url"`
}

// Storage drivers.
const (
	DriverFilesystem = "filesystem"
	DriverS3         = "s3"
)

// Storage is where the registry keeps blobs: a host directory or an
// S3-compatible bucket (passed through to distribution's s3 driver).
type Storage struct {
	Driver     string     `mapstructure:"driver"`
	Filesystem Filesystem `mapstructure:"filesystem"`
	S3         S3         `mapstructure:"s3"`
}

// Filesystem storage.
type Filesystem struct {
	// Path is the host directory; empty means ROOT/data/registry.
	Path string `mapstructure:"path"`
}

// S3 is distribution's s3 storage driver.
type S3 struct {
	Bucket   string `mapstructure:"bucket"`
	Region   string `mapstructure:"region"`
	Endpoint string `mapstructure:"endpoint" secret:"url"` // regionendpoint, for S3-compatible services
	// AccessKey identifies the key; SecretKey is the secret.
	AccessKey string `mapstructure:"access-key"`
	SecretKey string `mapstructure:"secret-key" secret:"value"`
	// RootDirectory is a key prefix inside the bucket.
	RootDirectory   string `mapstructure:"root-directory"`
	ForcePathStyle  bool   `mapstructure:"force-path-style"`
	Secure          bool   `mapstructure:"secure"`
	DisableRedirect bool   `mapstructure:"disable-redirect"`
}

// SSH is the port the firewall keeps open, before anything else.
type SSH struct {
	Port int `mapstructure:"port"`
}

// Fail2ban is the jail that bans clients whose token requests keep
// failing (401) or keep coming after a rate limit (429): MaxRetry of them
// within FindTime ban the client's address for BanTime.
type Fail2ban struct {
	MaxRetry int           `mapstructure:"maxretry"`
	FindTime time.Duration `mapstructure:"findtime"`
	BanTime  time.Duration `mapstructure:"bantime"`
}

// Upstreams are what nginx proxies to, HOST:PORT. The defaults are the
// compose service names; tests point them at loopback. The services listen
// on these ports inside their containers.
type Upstreams struct {
	Registry string `mapstructure:"registry"`
	Token    string `mapstructure:"token"`
}

// Network is the compose network the containers share.
type Network struct {
	// Subnet is its IPv4 prefix: private, /16 to /28. nginx gets a fixed
	// address on it, the only one regctl serve believes X-Forwarded-For
	// from (see render.NewNetworkData).
	Subnet string `mapstructure:"subnet"`
}

// Images are the container images compose runs.
type Images struct {
	Nginx    string `mapstructure:"nginx"`
	Registry string `mapstructure:"registry"`
	Mongo    string `mapstructure:"mongo"`
}

// Defaults returns the documented defaults. Domains have none: they are
// required.
func Defaults() Config {
	return Config{
		Root:    "/opt/regctl",
		Project: "regctl",
		ACME:    ACME{CA: "https://acme-v02.api.letsencrypt.org/directory"},
		TLS:     TLS{Profile: ProfileModern, HSTSMaxAge: 63072000},
		Token: Token{
			Issuer:          "regctl",
			Lifetime:        5 * time.Minute,
			RefreshLifetime: 90 * 24 * time.Hour,
			KeyAlgorithm:    "es256",
			KeyFormat:       KeyFormatX5C,
			ExtraServices:   []string{},
			Replicas:        1,
			LogFormat:       "json",
		},
		Database:  Database{Backend: BackendMongo},
		Storage:   Storage{Driver: DriverFilesystem, S3: S3{Secure: true}},
		SSH:       SSH{Port: 22},
		Fail2ban:  Fail2ban{MaxRetry: 10, FindTime: 10 * time.Minute, BanTime: time.Hour},
		Upstreams: Upstreams{Registry: "registry:5000", Token: "regctl:5001"},
		// The last /24 of 172.16.0.0/12. Docker takes /16s of that range
		// for its own networks from 172.17.0.0/16 upwards, so it reaches
		// 172.31.0.0/16 only with the fifteenth network on a host; the /20s
		// of an AWS default VPC (172.31.0.0/16) do not reach it either.
		Network: Network{Subnet: "172.31.255.0/24"},
		Images: Images{
			Nginx:    "nginx:1.28-alpine",
			Registry: "registry:3.0.0",
			Mongo:    "mongo:8.0",
		},
	}
}

// TokenServiceName is the compose service of the token server (the first
// replica; the others are TokenServiceName-2, ...).
const TokenServiceName = "regctl"

// MaxTokenReplicas bounds token.replicas.
const MaxTokenReplicas = 16

// TokenReplicas are the compose services that run the token server and the
// upstreams nginx sends token requests to (HOST:PORT), in order. With one
// replica the upstream is upstreams.token as it is; with more, Validate has
// made sure its host is TokenServiceName, and each replica is reached by
// its service name.
func (c *Config) TokenReplicas() (services, upstreams []string) {
	if c.Token.Replicas <= 1 {
		return []string{TokenServiceName}, []string{c.Upstreams.Token}
	}
	_, port, _ := net.SplitHostPort(c.Upstreams.Token)
	for i := 1; i <= c.Token.Replicas; i++ {
		name := TokenServiceName
		if i > 1 {
			name += "-" + strconv.Itoa(i)
		}
		services = append(services, name)
		upstreams = append(upstreams, net.JoinHostPort(name, port))
	}
	return services, upstreams
}

// SingleDomain reports whether the token endpoint shares the registry's
// name (under /auth).
func (c *Config) SingleDomain() bool { return c.Domains.Auth == "" }

// AuthDomain is the name the token endpoint is served under.
func (c *Config) AuthDomain() string {
	if c.SingleDomain() {
		return c.Domains.Registry
	}
	return c.Domains.Auth
}

// Names are the distinct public names, registry first.
func (c *Config) Names() []string {
	if c.SingleDomain() {
		return []string{c.Domains.Registry}
	}
	return []string{c.Domains.Registry, c.Domains.Auth}
}

// TokenService is the registry's auth.token.service and the token server's
// --service.
func (c *Config) TokenService() string {
	if c.Token.Service != "" {
		return c.Token.Service
	}
	return c.Domains.Registry
}

// Realm is the token endpoint URL the registry sends clients to.
func (c *Config) Realm() string { return "https://" + c.AuthDomain() + "/auth/token" }

// ManagedMongo reports whether compose runs a MongoDB container.
func (c *Config) ManagedMongo() bool {
	return c.Database.Backend == BackendMongo && c.Database.URL == ""
}
