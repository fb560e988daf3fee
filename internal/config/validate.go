package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validate checks every setting and returns all problems at once, each
// naming its key. Values end up in nginx, YAML and shell files, so names and
// paths are held to strict character sets rather than escaped.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	check := func(key string, err error) {
		if err != nil {
			add(key, "%v", err)
		}
	}

	check("root", CheckPath(c.Root))
	if c.Root == "/" {
		add("root", "must not be /")
	}
	if !projectRE.MatchString(c.Project) {
		add("project", "%q is not a compose project name (lowercase letters, digits, '-' and '_', starting with a letter or digit)", c.Project)
	}

	if c.Domains.Registry == "" {
		add("domains.registry", "is required (the registry's public DNS name, e.g. registry.example.com)")
	} else {
		check("domains.registry", CheckHostname(c.Domains.Registry))
	}
	if c.Domains.Auth != "" {
		check("domains.auth", CheckHostname(c.Domains.Auth))
		if c.Domains.Auth == c.Domains.Registry {
			add("domains.auth", "equals domains.registry: leave it empty to serve the token endpoint under https://%s/auth", c.Domains.Registry)
		}
	}

	if c.ACME.Email != "" {
		check("acme.email", CheckEmail(c.ACME.Email))
	}
	if err := checkURL(c.ACME.CA, "https"); err != nil {
		add("acme.ca", "%v", err)
	} else if !acmeURLRE.MatchString(c.ACME.CA) {
		add("acme.ca", "%q: want https://HOST[:PORT]/PATH with letters, digits and ._~/- only", c.ACME.CA)
	}

	switch c.TLS.Profile {
	case ProfileModern, ProfileIntermediate:
	default:
		add("tls.profile", "%q is not a profile: use %s (TLS 1.3 only) or %s", c.TLS.Profile, ProfileModern, ProfileIntermediate)
	}
	if c.TLS.HSTSMaxAge < 0 {
		add("tls.hsts-max-age", "must not be negative")
	}
	if c.TLS.HSTSPreload && c.TLS.HSTSMaxAge < 31536000 {
		add("tls.hsts-preload", "needs tls.hsts-max-age of at least 31536000 (one year)")
	}

	if !tokenWordRE.MatchString(c.Token.Issuer) {
		add("token.issuer", "%q: use 1-128 letters, digits and . _ : / -", c.Token.Issuer)
	}
	if c.Token.Service != "" && !tokenWordRE.MatchString(c.Token.Service) {
		add("token.service", "%q: use 1-128 letters, digits and . _ : / -", c.Token.Service)
	}
	for _, s := range c.Token.ExtraServices {
		if !tokenWordRE.MatchString(s) {
			add("token.extra-services", "%q: use 1-128 letters, digits and . _ : / -", s)
		}
	}
	// What regctl serve checks, from the token-server.yaml this renders:
	// a file that renders also starts.
	var se *SettingError
	for _, err := range joined(c.TokenServer().Validate()) {
		switch {
		case !errors.As(err, &se):
			add("token", "%v", err)
		case tokenServerKeys[se.Key] == "":
			add("token", "the token server's %s would be %v", se.Key, se.Err)
		case se.Key == "issuer", se.Key == "service" && c.TokenService() == "":
			// Checked above, with what they may contain (an empty
			// service is domains.registry missing).
		default:
			add(tokenServerKeys[se.Key], "%v", se.Err)
		}
	}
	if c.Token.Replicas < 1 || c.Token.Replicas > MaxTokenReplicas {
		add("token.replicas", "%d: must be between 1 and %d", c.Token.Replicas, MaxTokenReplicas)
	} else if host, _, _ := net.SplitHostPort(c.Upstreams.Token); c.Token.Replicas > 1 && host != TokenServiceName {
		add("token.replicas", "%d replicas are the compose services %s, %s-2, ...: upstreams.token must be %s:PORT, not %s", c.Token.Replicas, TokenServiceName, TokenServiceName, TokenServiceName, c.Upstreams.Token)
	}
	switch c.Token.KeyAlgorithm {
	case "es256", "rs256":
	default:
		add("token.key-algorithm", "%q: use es256 or rs256", c.Token.KeyAlgorithm)
	}
	switch c.Token.LogFormat {
	case "json", "text":
	default:
		add("token.log-format", "%q: use json or text", c.Token.LogFormat)
	}

	if c.Fail2ban.MaxRetry < 1 || c.Fail2ban.MaxRetry > 1000 {
		add("fail2ban.maxretry", "%d: must be between 1 and 1000", c.Fail2ban.MaxRetry)
	}
	if c.Fail2ban.FindTime < time.Minute || c.Fail2ban.FindTime > 7*24*time.Hour || c.Fail2ban.FindTime%time.Second != 0 {
		add("fail2ban.findtime", "%s: must be whole seconds between 1m and 168h", c.Fail2ban.FindTime)
	}
	if c.Fail2ban.BanTime < 10*time.Second || c.Fail2ban.BanTime > 365*24*time.Hour || c.Fail2ban.BanTime%time.Second != 0 {
		add("fail2ban.bantime", "%s: must be whole seconds between 10s and 8760h", c.Fail2ban.BanTime)
	}

	switch c.Database.Backend {
	case BackendMongo, BackendSQLite:
	default:
		add("database.backend", "%q: use %s or %s", c.Database.Backend, BackendMongo, BackendSQLite)
	}
	if c.Database.URL != "" {
		if c.Database.Backend != BackendMongo {
			add("database.url", "is only for an external MongoDB; leave it empty with database.backend %s", c.Database.Backend)
		}
		u, err := url.Parse(c.Database.URL)
		switch {
		case err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") || u.Host == "":
			add("database.url", "want mongodb://[USER:PASSWORD@]HOST[:PORT]/DATABASE")
		case strings.ContainsAny(c.Database.URL, " \t\r\n\"'"):
			add("database.url", "must not contain spaces or quotes")
		}
	}

	switch c.Storage.Driver {
	case DriverFilesystem:
		if c.Storage.Filesystem.Path != "" {
			check("storage.filesystem.path", CheckPath(c.Storage.Filesystem.Path))
		}
	case DriverS3:
		errs = append(errs, c.Storage.S3.validate()...)
	default:
		add("storage.driver", "%q: use %s or %s", c.Storage.Driver, DriverFilesystem, DriverS3)
	}

	check("ssh.port", CheckPort(c.SSH.Port))
	check("upstreams.registry", CheckHostPort(c.Upstreams.Registry))
	check("upstreams.token", CheckHostPort(c.Upstreams.Token))
	check("network.subnet", CheckSubnet(c.Network.Subnet))
	check("images.nginx", checkImage(c.Images.Nginx))
	check("images.registry", checkImage(c.Images.Registry))
	if c.Token.KeyFormat == KeyFormatJWKS && registryV2.MatchString(c.Images.Registry) {
		add("token.key-format", "jwks needs distribution 3 (auth.token.jwks), but images.registry is %s: use x5c, or a registry:3 image", c.Images.Registry)
	}
	if c.ManagedMongo() {
		check("images.mongo", checkImage(c.Images.Mongo))
	}
	return errors.Join(errs...)
}

// joined are the errors errors.Join joined into err.
func joined(err error) []error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

func (s *S3) validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("storage.s3.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !bucketRE.MatchString(s.Bucket) {
		add("bucket", "%q is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')", s.Bucket)
	}
	if !regionRE.MatchString(s.Region) {
		add("region", "%q: is required with storage.driver s3 (e.g. us-east-1)", s.Region)
	}
	if s.Endpoint != "" {
		if err := checkURL(s.Endpoint, "https", "http"); err != nil {
			add("endpoint", "%v", err)
		}
	}
	if (s.AccessKey == "") != (s.SecretKey == "") {
		add("access-key", "set both access-key and secret-key, or neither (instance credentials)")
	}
	for _, kv := range [][2]string{{"access-key", s.AccessKey}, {"secret-key", s.SecretKey}} {
		if strings.ContainsAny(kv[1], " \t\r\n") {
			add(kv[0], "must not contain whitespace")
		}
	}
	if s.RootDirectory != "" {
		if err := CheckPath(s.RootDirectory); err != nil {
			add("root-directory", "%v", err)
		}
	}
	return errs
}

var (
	labelRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	projectRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	pathRE      = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
	tokenWordRE = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)
	bucketRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	regionRE    = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
	// An image whose tag says distribution 2 (registry:2, registry:2.8.3).
	registryV2 = regexp.MustCompile(`:v?2(\.[0-9.]+)?$`)
	imageRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]{0,254}$`)
	// The address and the ACME URL end up on the renewal job's command
	// line (cron runs it through /bin/sh), hence no shell characters.
	emailLocalRE = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)
	acmeURLRE    = regexp.MustCompile(`^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$`)
)

// CheckHostname accepts a DNS host name (RFC 1123 labels, lowercase, at
// most 253 characters) and nothing else: no spaces, ';', '{', quotes or
// newlines can reach a configuration file through it. IP addresses are
// rejected: certificates and virtual hosts are by name.
func CheckHostname(s string) error {
	if s == "" {
		return errors.New("empty host name")
	}
	if len(s) > 253 {
		return fmt.Errorf("%.40q…: host name longer than 253 characters", s)
	}
	if s != strings.ToLower(s) {
		return fmt.Errorf("%q: write host names in lowercase", s)
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("%q is not a valid host name (letters, digits and '-' in dot-separated labels of 1-63 characters)", s)
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return fmt.Errorf("%q: use a DNS name, not an IP address", s)
	}
	return nil
}

// CheckEmail accepts a bare address (no display name) with a valid domain.
func CheckEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return fmt.Errorf("%q is not an email address (want name@example.com)", s)
	}
	local, domain, _ := strings.Cut(s, "@")
	if !emailLocalRE.MatchString(local) {
		return fmt.Errorf("%q is not an email address (want name@example.com)", s)
	}
	if err := CheckHostname(domain); err != nil {
		return fmt.Errorf("%q: domain: %w", s, err)
	}
	return nil
}

// CheckPath accepts an absolute, clean path of letters, digits and ._-/.
func CheckPath(s string) error {
	if s == "" {
		return errors.New("empty path")
	}
	if !pathRE.MatchString(s) {
		return fmt.Errorf("%q: want an absolute path of letters, digits, '.', '_', '-' and '/'", s)
	}
	if path.Clean(s) != s {
		return fmt.Errorf("%q is not clean: write %s", s, path.Clean(s))
	}
	return nil
}

// CheckPort accepts 1-65535.
func CheckPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%d is not a port (1-65535)", p)
	}
	return nil
}

// CheckHostPort accepts HOST:PORT with a host name or an IP address.
func CheckHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT", s)
	}
	if net.ParseIP(host) == nil {
		for _, l := range strings.Split(host, ".") {
			if !labelRE.MatchString(l) {
				return fmt.Errorf("%q: %q is neither a host name nor an IP address", s, host)
			}
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("%q: port %q is not a number", s, port)
	}
	return CheckPort(n)
}

// CheckSubnet accepts a private IPv4 prefix of /16 to /28, written
// without host bits: at least 16 addresses, for the gateway, nginx and a
// range for the other containers.
func CheckSubnet(s string) error {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is4():
		return fmt.Errorf("%q: want an IPv4 prefix such as 172.31.255.0/24", s)
	case p.Bits() < 16 || p.Bits() > 28:
		return fmt.Errorf("%q: want a prefix of /16 to /28", s)
	case p.Masked() != p:
		return fmt.Errorf("%q has host bits set: write %s", s, p.Masked())
	case !p.Addr().IsPrivate():
		return fmt.Errorf("%q is not private: use part of 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16", s)
	}
	return nil
}

func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || strings.ContainsAny(s, " \t\r\n\"'<>\\{}") {
		return fmt.Errorf("%q is not a URL", s)
	}
	for _, sc := range schemes {
		if u.Scheme == sc {
			return nil
		}
	}
	return fmt.Errorf("%q: want a %s:// URL", s, strings.Join(schemes, ":// or "))
}

func checkImage(s string) error {
	if !imageRE.MatchString(s) {
		return fmt.Errorf("%q is not an image reference (e.g. nginx:1.28-alpine)", s)
	}
	return nil
}
