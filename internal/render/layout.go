package render

import "path"

// The install root's layout: paths relative to config.Config.Root, slash
// separated. Other packages (provision, certs) agree on these names.
const (
	ComposeFile      = "compose.yaml"
	NginxConfFile    = "nginx/nginx.conf"
	RegistryConfFile = "registry/config.yml"
	// RegistryBundleFile and RegistryJWKSFile are copies of the keys'
	// bundle.pem and jwks.json, so the registry never sees a private key.
	RegistryBundleFile = "registry/token-bundle.pem"
	RegistryJWKSFile   = "registry/token-jwks.json"
	TokenConfFile      = "token/token-server.yaml"
	DockerfileFile     = "build/Dockerfile"
	BinaryFile         = "build/regctl"
	UFWScriptFile      = "firewall/ufw.sh"
	JailFile           = "fail2ban/jail.d/regctl.conf"
	FilterFile         = "fail2ban/filter.d/regctl-auth.conf"
	RenewServiceFile   = "renew/regctl-renew.service"
	RenewTimerFile     = "renew/regctl-renew.timer"
	RenewCronFile      = "renew/regctl-renew.cron"
	// LogrotateFile rotates the logs below LogDir (installed as
	// InstalledLogrotate).
	LogrotateFile = "logrotate/regctl"

	// KeysDir is `regctl keys generate --dir ROOT/keys`.
	KeysDir = "keys"
	// SecretsDir holds generated passwords, one per file, mode 0600.
	SecretsDir         = "secrets"
	MongoPasswordFile  = "secrets/mongo-password"
	RegistrySecretFile = "secrets/registry-http-secret"

	// CertsDir holds certificates: live/NAME/{fullchain.pem,privkey.pem},
	// and dhparams.pem.
	CertsDir     = "certs"
	LiveDir      = "certs/live"
	DHParamsFile = "certs/dhparams.pem"
	// WebRootDir is the ACME HTTP-01 webroot: challenge files go to
	// WebRootDir/.well-known/acme-challenge/TOKEN.
	WebRootDir = "acme-webroot"

	LogDir       = "logs"
	NginxLogDir  = "logs/nginx"
	AuthLogFile  = "logs/nginx/auth.log"
	RenewLogFile = "logs/renew.log"
	// TokenLogDir is the token server's writable log directory (0700):
	// its audit log, AuditLogFile, read on the host with
	// `regctl audit tail --file ROOT/logs/regctl/audit.log`.
	TokenLogDir  = "logs/regctl"
	AuditLogFile = "logs/regctl/audit.log"

	RegistryDataDir = "data/registry"
	MongoDataDir    = "data/mongo"
	SQLiteDataDir   = "data/regctl"

	// StateDir is regctl's own bookkeeping: the manifest of rendered
	// files, backups of replaced files, and step markers.
	StateDir     = ".regctl"
	ManifestFile = ".regctl/manifest.json"
	BackupDir    = ".regctl/backup"
)

// CertFile is the certificate chain for name, relative to the root.
func CertFile(name string) string { return path.Join(LiveDir, name, "fullchain.pem") }

// CertKeyFile is the certificate's private key for name (0600).
func CertKeyFile(name string) string { return path.Join(LiveDir, name, "privkey.pem") }

// Paths inside the containers.
const (
	ContainerNginxDir     = "/etc/nginx" // nginx.conf replaces the image's, so plain `nginx -t` and `nginx -s reload` use it
	ContainerCertsDir     = "/etc/regctl/certs"
	ContainerWebRoot      = "/var/www/acme"
	ContainerNginxLogDir  = "/var/log/regctl"
	ContainerNginxTemp    = "/var/cache/nginx"
	ContainerRegistryDir  = "/etc/distribution"
	ContainerRegistryData = "/var/lib/registry"
	ContainerTokenDir     = "/etc/regctl"
	ContainerKeysDir      = "/keys"
	ContainerSQLiteDir    = "/data"
	ContainerTokenLogDir  = "/var/log/regctl" // TokenLogDir, in the regctl container
)

// Installed locations of the host-level files, outside the root.
const (
	InstalledJail         = "/etc/fail2ban/jail.d/regctl.conf"
	InstalledFilter       = "/etc/fail2ban/filter.d/regctl-auth.conf"
	InstalledRenewService = "/etc/systemd/system/regctl-renew.service"
	InstalledRenewTimer   = "/etc/systemd/system/regctl-renew.timer"
	InstalledRenewCron    = "/etc/cron.d/regctl-renew"
	InstalledLogrotate    = "/etc/logrotate.d/regctl"
)
