package render

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/config"
)

// NginxData is nginx.conf.tmpl's input. Every path and address is a field,
// so tests can point them at temporary directories and loopback ports.
type NginxData struct {
	Profile      string   // Mozilla profile name, for the header comment
	PidFile      string   // pid
	ErrorLog     string   // error_log target (a path or "stderr")
	AccessLog    string   // main access log (a path or "/dev/stdout")
	AuthLog      string   // token requests' log, read by fail2ban
	TempDir      string   // client_body and proxy temp paths go below it
	WebRoot      string   // ACME webroot
	HTTPListen   []string // listen arguments of the port-80 server
	HTTPSListen  []string // listen arguments of the TLS servers
	HealthListen string   // plain HTTP /healthz, loopback only
	Protocols    string   // ssl_protocols
	Ciphers      string   // ssl_ciphers; empty for TLS 1.3 only
	DHParam      string   // ssl_dhparam; empty unless a DHE cipher is allowed
	HSTS         string   // Strict-Transport-Security value; empty for none
	// HTTP2On turns HTTP/2 on with the `http2 on;` directive of nginx
	// 1.25.1 and later (which warns about `listen … http2`); false
	// writes `listen … ssl http2`, the only form before 1.25.1.
	HTTP2On bool

	RegistryUpstream string   // HOST:PORT of the registry
	TokenUpstreams   []string // HOST:PORT of each replica of regctl serve
	Servers          []NginxServer
}

// NginxServer is one TLS virtual host.
type NginxServer struct {
	Name     string
	Cert     string // fullchain.pem
	Key      string // privkey.pem
	Registry bool   // proxies /v2/ to the registry
	Auth     bool   // proxies /auth to the token server
}

// IntermediateCiphers is Mozilla's "intermediate" TLS 1.2 cipher list
// (Server Side TLS guidelines 5.7), including DHE, hence ssl_dhparam.
const IntermediateCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" +
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

// NewNginxData returns the data for the nginx container.
func NewNginxData(c *config.Config) NginxData {
	d := NginxData{
		Profile:          c.TLS.Profile,
		PidFile:          "/var/run/nginx.pid",
		ErrorLog:         "stderr",
		AccessLog:        "/dev/stdout",
		AuthLog:          path.Join(ContainerNginxLogDir, path.Base(AuthLogFile)),
		TempDir:          ContainerNginxTemp,
		WebRoot:          ContainerWebRoot,
		HTTPListen:       []string{"80"},
		HTTPSListen:      []string{"443"},
		HealthListen:     "127.0.0.1:8080",
		Protocols:        "TLSv1.3",
		RegistryUpstream: c.Upstreams.Registry,
		TokenUpstreams:   tokenUpstreams(c),
		HTTP2On:          NginxHasHTTP2Directive(NginxImageVersion(c.Images.Nginx)),
	}
	if c.TLS.Profile == config.ProfileIntermediate {
		d.Protocols = "TLSv1.2 TLSv1.3"
		d.Ciphers = IntermediateCiphers
		d.DHParam = path.Join(ContainerCertsDir, path.Base(DHParamsFile))
	}
	if c.TLS.HSTSMaxAge > 0 {
		d.HSTS = "max-age=" + strconv.Itoa(c.TLS.HSTSMaxAge)
		if c.TLS.HSTSPreload {
			d.HSTS += "; includeSubDomains; preload"
		}
	}
	for i, name := range c.Names() {
		d.Servers = append(d.Servers, NginxServer{
			Name:     name,
			Cert:     path.Join(ContainerCertsDir, "live", name, "fullchain.pem"),
			Key:      path.Join(ContainerCertsDir, "live", name, "privkey.pem"),
			Registry: i == 0,
			Auth:     name == c.AuthDomain(),
		})
	}
	return d
}

// NginxImageVersion is the nginx version an image reference's tag names
// ("1.28" for nginx:1.28-alpine, "1.22.1" for nginx:1.22.1), or "" when
// the tag names none (latest, mainline, a distribution's name, a digest).
func NginxImageVersion(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	i := strings.LastIndexByte(ref, ':')
	if i < 0 || strings.Contains(ref[i:], "/") {
		return "" // no tag, or the colon was a registry port
	}
	tag := ref[i+1:]
	end := 0
	for end < len(tag) && (tag[end] == '.' || tag[end] >= '0' && tag[end] <= '9') {
		end++
	}
	v := strings.Trim(tag[:end], ".")
	if !strings.Contains(v, ".") {
		return "" // "1" alone, or a date-like tag, says too little
	}
	return v
}

// NginxHasHTTP2Directive reports whether nginx version v (as
// NginxImageVersion returns it) has the `http2` directive, new in 1.25.1.
// An unknown version is taken to be a current nginx.
func NginxHasHTTP2Directive(v string) bool {
	if v == "" {
		return true
	}
	var parts [3]int
	for i, f := range strings.SplitN(v, ".", 3) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return true
		}
		parts[i] = n
	}
	return parts[0]*1_000_000+parts[1]*1_000+parts[2] >= 1_025_001
}

// ComposeData is compose.yaml.tmpl's input.
type ComposeData struct {
	Project    string
	Images     config.Images
	TokenImage string // the locally built token server image

	NginxDir                string // container paths
	CertsDir, WebRoot       string
	LogDir                  string
	RegistryDir             string
	RegistryConf            string
	StorageSource           string // host directory of filesystem storage; empty for S3
	StorageTarget           string
	TokenDir, TokenConf     string
	TokenLogDir             string // the audit log's directory
	KeysDir                 string
	SQLite                  bool
	SQLiteDir               string
	Mongo                   bool // run a MongoDB container
	MongoUser               string
	NginxHealthURL          string
	RegistryHealthURL       string
	TokenHealthURL          string
	RegistryPort, TokenPort string
	MetricsPort             string // regctl serve's /metrics, on the compose network only
	Network                 NetworkData
	// TokenServices are the token server's replicas: regctl, regctl-2, ...
	TokenServices []string
}

// MongoUser is the root user of the managed MongoDB.
const MongoUser = "regctl"

// NewComposeData returns the data for compose.yaml.
func NewComposeData(c *config.Config) ComposeData {
	d := ComposeData{
		Project:           c.Project,
		Images:            c.Images,
		TokenImage:        c.Project + "-regctl:local",
		NginxDir:          ContainerNginxDir,
		CertsDir:          ContainerCertsDir,
		WebRoot:           ContainerWebRoot,
		LogDir:            ContainerNginxLogDir,
		RegistryDir:       ContainerRegistryDir,
		RegistryConf:      path.Join(ContainerRegistryDir, path.Base(RegistryConfFile)),
		TokenDir:          ContainerTokenDir,
		TokenConf:         path.Join(ContainerTokenDir, path.Base(TokenConfFile)),
		TokenLogDir:       ContainerTokenLogDir,
		KeysDir:           ContainerKeysDir,
		SQLite:            c.Database.Backend == config.BackendSQLite,
		SQLiteDir:         ContainerSQLiteDir,
		Mongo:             c.ManagedMongo(),
		MongoUser:         MongoUser,
		RegistryPort:      port(c.Upstreams.Registry),
		TokenPort:         port(c.Upstreams.Token),
		TokenServices:     tokenServices(c),
		MetricsPort:       metricsPort(c),
		Network:           NewNetworkData(c),
		NginxHealthURL:    "http://127.0.0.1:8080/healthz",
		RegistryHealthURL: "http://" + registryDebugAddr(c) + "/debug/health",
		TokenHealthURL:    "http://127.0.0.1:" + port(c.Upstreams.Token) + "/readyz",
	}
	if c.Storage.Driver == config.DriverFilesystem {
		d.StorageSource = "./" + RegistryDataDir
		if c.Storage.Filesystem.Path != "" {
			d.StorageSource = c.Storage.Filesystem.Path
		}
		d.StorageTarget = ContainerRegistryData
	}
	return d
}

// NetworkData is the addressing of the compose network, derived from
// network.subnet: the gateway is the first address after the network's
// own, nginx the second. Docker gives the other containers addresses from
// IPRange, the upper half of the subnet, so none of them can take nginx's
// address before nginx starts (it starts last).
type NetworkData struct {
	Subnet  string
	IPRange string
	Gateway string
	Nginx   string // nginx's ipv4_address, the token server's one trusted proxy
	// Mongo is the managed MongoDB's ipv4_address, so that regctl on the
	// host reaches it (HostStoreURL) without a published port.
	Mongo string
}

// NewNetworkData returns the compose network's addresses. c must have
// passed Validate (config.CheckSubnet): a private IPv4 /16 to /28.
func NewNetworkData(c *config.Config) NetworkData {
	p, err := netip.ParsePrefix(c.Network.Subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return NetworkData{}
	}
	p = p.Masked()
	a := p.Addr().As4()
	half := binary.BigEndian.Uint32(a[:]) + 1<<(31-p.Bits())
	binary.BigEndian.PutUint32(a[:], half)
	gateway := p.Addr().Next()
	return NetworkData{
		Subnet:  p.String(),
		IPRange: netip.PrefixFrom(netip.AddrFrom4(a), p.Bits()+1).String(),
		Gateway: gateway.String(),
		Nginx:   gateway.Next().String(),
		Mongo:   gateway.Next().Next().String(),
	}
}

// RegistryData is registry.yml.tmpl's input (distribution's config.yml).
type RegistryData struct {
	Addr, DebugAddr string
	Host            string // public URL, for Location headers
	HTTPSecret      string
	StorageDir      string
	S3              *config.S3 // nil for filesystem storage
	Realm           string
	Service         string
	Issuer          string
	// RootCertBundle is "" with token.key-format jwks: distribution 3
	// checks a token's x5c against it whenever it is set, and finds the
	// kid of a token without x5c in JWKS.
	RootCertBundle string
	JWKS           string
}

// NewRegistryData returns the data for the registry container.
func NewRegistryData(c *config.Config, s Secrets) RegistryData {
	d := RegistryData{
		Addr:           ":" + port(c.Upstreams.Registry),
		DebugAddr:      registryDebugAddr(c),
		Host:           "https://" + c.Domains.Registry,
		HTTPSecret:     s.RegistryHTTPSecret,
		StorageDir:     ContainerRegistryData,
		Realm:          c.Realm(),
		Service:        c.TokenService(),
		Issuer:         c.Token.Issuer,
		RootCertBundle: path.Join(ContainerRegistryDir, path.Base(RegistryBundleFile)),
		JWKS:           path.Join(ContainerRegistryDir, path.Base(RegistryJWKSFile)),
	}
	if c.Token.KeyFormat == config.KeyFormatJWKS {
		d.RootCertBundle = ""
	}
	if c.Storage.Driver == config.DriverS3 {
		s3 := c.Storage.S3
		d.S3 = &s3
	}
	return d
}

// registryDebugAddr is the registry's health/debug listener: loopback
// inside its container, on a port that is not the registry's own.
func registryDebugAddr(c *config.Config) string {
	if port(c.Upstreams.Registry) == "5001" {
		return "127.0.0.1:5002"
	}
	return "127.0.0.1:5001"
}

// TokenData is token-server.yaml.tmpl's input: `regctl serve --config`.
type TokenData struct {
	Listen string
	Issuer string
	// Services: the registry's first, then token.extra-services.
	Services        []string
	KeysDir         string
	Store           string
	TokenLifetime   string
	RefreshLifetime string
	KeyFormat       string
	// TrustedProxies may set X-Forwarded-For: nginx's address alone.
	TrustedProxies []string
	LogFormat      string
	// MetricsListen is the Prometheus listener (/metrics, /livez,
	// /readyz): every interface of the container, so that a scraper on
	// the compose network reaches it. compose.yaml publishes no port for
	// it and nginx does not proxy it.
	MetricsListen string
	// AuditLog is the audit log's path in the container; on the host it
	// is ROOT/AuditLogFile.
	AuditLog string
	// AuditLogHost is AuditLogFile, relative to the install root:
	// token-server.yaml, like the registry's and nginx's configuration,
	// does not depend on where the root is.
	AuditLogHost string
}

// NewTokenData returns the data for the token server container.
func NewTokenData(c *config.Config, s Secrets) TokenData {
	// The settings config.Validate has checked as regctl serve does.
	ts := c.TokenServer()
	return TokenData{
		Listen:          ":" + port(c.Upstreams.Token),
		Issuer:          ts.Issuer,
		Services:        ts.Services,
		KeysDir:         ContainerKeysDir,
		Store:           StoreURL(c, s),
		TokenLifetime:   ts.TokenLifetime.String(),
		RefreshLifetime: ts.RefreshLifetime.String(),
		KeyFormat:       ts.KeyFormat,
		TrustedProxies:  []string{NewNetworkData(c).Nginx + "/32"},
		LogFormat:       c.Token.LogFormat,
		MetricsListen:   ":" + metricsPort(c),
		AuditLog:        path.Join(ContainerTokenLogDir, path.Base(AuditLogFile)),
		AuditLogHost:    AuditLogFile,
	}
}

// metricsPort is regctl serve's metrics port inside its container: 9101,
// or 9102 when the token server itself listens on 9101.
func metricsPort(c *config.Config) string {
	if port(c.Upstreams.Token) == "9101" {
		return "9102"
	}
	return "9101"
}

// StoreURL is the store as the token server container sees it.
func StoreURL(c *config.Config, s Secrets) string {
	switch {
	case c.Database.Backend == config.BackendSQLite:
		return "sqlite://" + path.Join(ContainerSQLiteDir, "regctl.db")
	case c.Database.URL != "":
		return c.Database.URL
	}
	u := url.URL{
		Scheme:   "mongodb",
		User:     url.UserPassword(MongoUser, s.MongoPassword),
		Host:     "mongo:27017",
		Path:     "/regctl",
		RawQuery: "authSource=admin",
	}
	return u.String()
}

// HostStoreURL is the store as regctl on the host reaches it: the SQLite
// file below the install root, the configured MongoDB, or the managed
// MongoDB at its fixed address on the compose network.
func HostStoreURL(c *config.Config, s Secrets) string {
	switch {
	case c.Database.Backend == config.BackendSQLite:
		return "sqlite://" + path.Join(c.Root, SQLiteDataDir, "regctl.db")
	case c.Database.URL != "":
		return c.Database.URL
	}
	u := url.URL{
		Scheme:   "mongodb",
		User:     url.UserPassword(MongoUser, s.MongoPassword),
		Host:     net.JoinHostPort(NewNetworkData(c).Mongo, "27017"),
		Path:     "/regctl",
		RawQuery: "authSource=admin",
	}
	return u.String()
}

// DockerfileData is Dockerfile.tmpl's input.
type DockerfileData struct {
	BinarySHA256 string
	Port         string
}

// UFWData is ufw.sh.tmpl's input.
type UFWData struct{ SSHPort int }

// Fail2banData is the input of the jail and filter templates.
type Fail2banData struct {
	JailPath, FilterPath string // where init installs them
	LogPath              string // the nginx token log on the host
	MaxRetry             int
	FindTime, BanTime    int // seconds
}

// NewFail2banData returns the jail settings for the host.
func NewFail2banData(c *config.Config) Fail2banData {
	return Fail2banData{
		JailPath:   InstalledJail,
		FilterPath: InstalledFilter,
		LogPath:    path.Join(c.Root, AuthLogFile),
		MaxRetry:   c.Fail2ban.MaxRetry,
		FindTime:   int(c.Fail2ban.FindTime / time.Second),
		BanTime:    int(c.Fail2ban.BanTime / time.Second),
	}
}

// LogrotateData is logrotate.conf.tmpl's input: the logs the stack writes
// on the host, and how many rotated copies of each are kept.
type LogrotateData struct {
	Path      string // where init installs the rule
	AuthLog   string // nginx's token log, read by fail2ban
	AuditLog  string // regctl serve's audit log (0600)
	RenewLog  string // the cron renewal job's output
	AuthKeep  int    // days
	AuditKeep int    // days
	RenewKeep int    // weeks
}

// NewLogrotateData returns the rotation of the host's log files. The
// containers' own output goes to Docker's json-file driver, which
// compose.yaml limits; these are the files below ROOT/logs.
func NewLogrotateData(c *config.Config) LogrotateData {
	return LogrotateData{
		Path:      InstalledLogrotate,
		AuthLog:   path.Join(c.Root, AuthLogFile),
		AuditLog:  path.Join(c.Root, AuditLogFile),
		RenewLog:  path.Join(c.Root, RenewLogFile),
		AuthKeep:  14,
		AuditKeep: 30,
		RenewKeep: 8,
	}
}

// RenewData is the input of the renewal schedule templates.
type RenewData struct {
	Command string // regctl certs renew --config ...
	Minute  int
	Hours   string // "H,H+12"
	LogFile string
}

// NewRenewData returns the renewal schedule: twice a day, twelve hours
// apart, at a minute derived from the registry's name so that hosts do not
// all ask the CA at once, and re-rendering gives the same time.
func NewRenewData(c *config.Config, env Env) RenewData {
	h := fnv.New32a()
	h.Write([]byte(c.Domains.Registry))
	sum := h.Sum32()
	hour := int(sum/60) % 12
	cmd := env.BinaryPath + " certs renew"
	if env.ConfigPath != "" {
		cmd += " --config " + env.ConfigPath
	}
	cmd += " " + strings.Join(CertsFlags(c), " ")
	return RenewData{
		Command: cmd,
		Minute:  int(sum % 60),
		Hours:   fmt.Sprintf("%d,%d", hour, hour+12),
		LogFile: path.Join(c.Root, RenewLogFile),
	}
}

// CertsFlags are the `regctl certs obtain|renew` flags that carry
// regctl.yaml's settings (their own keys are flat: acme-email, ...).
// Values are validated to contain no spaces or shell characters.
func CertsFlags(c *config.Config) []string {
	flags := []string{"--root", c.Root, "--acme-directory", c.ACME.CA}
	if c.ACME.Email != "" {
		flags = append(flags, "--acme-email", c.ACME.Email)
	}
	return flags
}

func port(hostport string) string {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	return p
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func tokenServices(c *config.Config) []string {
	services, _ := c.TokenReplicas()
	return services
}

func tokenUpstreams(c *config.Config) []string {
	_, upstreams := c.TokenReplicas()
	return upstreams
}
