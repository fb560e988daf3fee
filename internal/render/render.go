// Package render turns a validated config.Config into the files of a
// regctl host: nginx.conf, compose.yaml, the registry's and the token
// server's configuration, the token server's Dockerfile, the ufw script,
// the fail2ban jail and filter, the certificate renewal schedule, and the
// logrotate rule for the logs the stack writes on the host.
//
// Rendering is pure: Files returns contents and modes in memory and touches
// nothing. Each template has a typed data struct, built from the
// configuration by a New...Data function; the templates (package
// templates) hold no decisions, and a missing field is an error. Writing,
// diffing and the manifest of rendered files are internal/provision's job.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"text/template"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/templates"
)

// Secrets are the generated values the files embed. They are generated
// once (internal/provision) and read back on every render.
type Secrets struct {
	MongoPassword      string // empty unless compose runs MongoDB
	RegistryHTTPSecret string
	TokenBundle        []byte // keys/bundle.pem: the registry's rootcertbundle
	TokenJWKS          []byte // keys/jwks.json
}

// Env holds the facts about this host and this binary that the files need
// and regctl.yaml does not say.
type Env struct {
	// ConfigPath is the absolute path of regctl.yaml, passed to the
	// renewal job; empty when the settings came from the environment.
	ConfigPath string
	// BinaryPath is where regctl is installed, for the renewal job.
	BinaryPath string
	// Binary is the regctl executable (static) the token server image is
	// built from.
	Binary []byte
}

// File is one rendered file or directory.
type File struct {
	Path   string      // relative to the root, slash separated
	Data   []byte      // nil for a directory
	Mode   fs.FileMode // permission bits; 0600 for secrets, 0700 for their directories
	Dir    bool        // a directory that must exist (a mount source)
	Binary bool        // not text: never shown as a diff
	// UID and GID, when not -1, are the owner the file must have (the
	// MongoDB password belongs to the mongodb user of the mongo image).
	UID, GID int
}

// Public, private and executable modes.
const (
	ModeFile      fs.FileMode = 0o644
	ModeSecret    fs.FileMode = 0o600
	ModeExec      fs.FileMode = 0o755
	ModeDir       fs.FileMode = 0o755
	ModeSecretDir fs.FileMode = 0o700
)

var (
	parseOnce sync.Once
	parsed    *template.Template
	parseErr  error
)

// tmpl returns the parsed templates.
func tmpl() (*template.Template, error) {
	parseOnce.Do(func() {
		parsed, parseErr = template.New("").
			Option("missingkey=error").
			Funcs(template.FuncMap{"q": quote}).
			ParseFS(templates.FS, "*.tmpl")
	})
	return parsed, parseErr
}

// quote writes s as a double-quoted YAML (and JSON) string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Execute renders the template name (e.g. "nginx.conf.tmpl") with data.
func Execute(name string, data any) ([]byte, error) {
	t, err := tmpl()
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// Files renders everything below the root. c must have passed Validate.
func Files(c *config.Config, s Secrets, env Env) ([]File, error) {
	if c.ManagedMongo() && s.MongoPassword == "" {
		return nil, errors.New("render: no MongoDB password (generate secrets first)")
	}
	if s.RegistryHTTPSecret == "" || len(s.TokenBundle) == 0 {
		return nil, errors.New("render: secrets and keys are missing (generate them first)")
	}
	// Both paths go unquoted onto the renewal job's command line (cron
	// runs it through /bin/sh), so they are held to config.CheckPath too.
	if env.ConfigPath != "" {
		if err := config.CheckPath(env.ConfigPath); err != nil {
			return nil, fmt.Errorf("--config: %w: the renewal job runs regctl with this path; move regctl.yaml to such a path", err)
		}
	}
	if env.BinaryPath != "" {
		if err := config.CheckPath(env.BinaryPath); err != nil {
			return nil, fmt.Errorf("regctl executable: %w (install it as /usr/local/bin/regctl)", err)
		}
	}
	// nginx's address, the token server's one trusted proxy, comes from
	// the subnet: without it, compose.yaml and token-server.yaml would not
	// agree on it.
	if err := config.CheckSubnet(c.Network.Subnet); err != nil {
		return nil, fmt.Errorf("network.subnet: %w", err)
	}
	var files []File
	var errs []error
	add := func(p, tmplName string, mode fs.FileMode, data any) {
		b, err := Execute(tmplName, data)
		if err != nil {
			errs = append(errs, err)
			return
		}
		files = append(files, File{Path: p, Data: b, Mode: mode, UID: -1, GID: -1})
	}
	dir := func(p string, mode fs.FileMode) {
		files = append(files, File{Path: p, Dir: true, Mode: mode, UID: -1, GID: -1})
	}

	dir(path.Dir(NginxConfFile), ModeDir)
	dir(path.Dir(RegistryConfFile), ModeSecretDir)
	dir(path.Dir(TokenConfFile), ModeSecretDir)
	dir(path.Dir(DockerfileFile), ModeDir)
	dir(path.Dir(UFWScriptFile), ModeDir)
	dir(path.Dir(JailFile), ModeDir)
	dir(path.Dir(FilterFile), ModeDir)
	dir(path.Dir(RenewTimerFile), ModeDir)
	dir(path.Dir(LogrotateFile), ModeDir)
	dir(WebRootDir, ModeDir)
	dir(NginxLogDir, ModeDir)
	dir(TokenLogDir, ModeSecretDir) // the audit log: user names and addresses
	dir(CertsDir, ModeDir)
	dir(LiveDir, ModeSecretDir)
	if c.Storage.Driver == config.DriverFilesystem && c.Storage.Filesystem.Path == "" {
		dir(RegistryDataDir, ModeDir)
	}
	if c.ManagedMongo() {
		dir(MongoDataDir, ModeDir)
	}
	if c.Database.Backend == config.BackendSQLite {
		dir(SQLiteDataDir, ModeSecretDir)
	}

	add(ComposeFile, "compose.yaml.tmpl", ModeFile, NewComposeData(c))
	add(NginxConfFile, "nginx.conf.tmpl", ModeFile, NewNginxData(c))
	add(RegistryConfFile, "registry.yml.tmpl", ModeSecret, NewRegistryData(c, s))
	files = append(files,
		File{Path: RegistryBundleFile, Data: s.TokenBundle, Mode: ModeFile, UID: -1, GID: -1},
		File{Path: RegistryJWKSFile, Data: s.TokenJWKS, Mode: ModeFile, UID: -1, GID: -1},
	)
	add(TokenConfFile, "token-server.yaml.tmpl", ModeSecret, NewTokenData(c, s))
	add(DockerfileFile, "Dockerfile.tmpl", ModeFile, DockerfileData{BinarySHA256: sha256Hex(env.Binary), Port: port(c.Upstreams.Token)})
	if env.Binary != nil {
		files = append(files, File{Path: BinaryFile, Data: env.Binary, Mode: ModeExec, Binary: true, UID: -1, GID: -1})
	}
	add(UFWScriptFile, "ufw.sh.tmpl", ModeExec, UFWData{SSHPort: c.SSH.Port})
	f2b := NewFail2banData(c)
	add(JailFile, "fail2ban-jail.conf.tmpl", ModeFile, f2b)
	add(FilterFile, "fail2ban-filter.conf.tmpl", ModeFile, f2b)
	renew := NewRenewData(c, env)
	add(RenewServiceFile, "renew.service.tmpl", ModeFile, renew)
	add(RenewTimerFile, "renew.timer.tmpl", ModeFile, renew)
	add(RenewCronFile, "renew.cron.tmpl", ModeFile, renew)
	// logrotate ignores a rule file that group or others may write.
	add(LogrotateFile, "logrotate.conf.tmpl", ModeFile, NewLogrotateData(c))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return files, nil
}

// Find returns the file at p, or nil.
func Find(files []File, p string) *File {
	for i := range files {
		if files[i].Path == p {
			return &files[i]
		}
	}
	return nil
}
