package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/redact"
	"github.com/regctl/regctl/internal/render"
)

// InitOptions are the inputs of `regctl init` after the CLI has parsed
// them.
type InitOptions struct {
	Config *config.Config
	// Render holds the config path, installed binary path and the binary
	// the token server image is built from.
	Render render.Env
	// Self is the path of the running regctl, for `regctl certs obtain`.
	Self string
	// Distro is the system, which names the packages step 1 installs.
	Distro Distro
	// SelfSigned makes step 5 create self-signed certificates instead of
	// asking the CA (and skips the renewal schedule).
	SelfSigned bool
	// AdminUser and AdminPassword create the first user in step 8; the
	// password may be nil when NeedsAdmin is false.
	AdminUser     string
	AdminPassword []byte
	// Force overwrites rendered files edited by hand; Confirm asks about
	// each instead (see ApplyOptions).
	Force   bool
	Confirm func(c Change, diff string) (bool, error)
	// Join: this host joins a deployment (see SecretFiles.Join).
	Join bool
	// DryRun only quiets the progress lines the host already prints.
	DryRun bool
	// Secrets learns the configuration's secrets and every secret init
	// generates or reads, before it is written or shown; Init masks them
	// in the diffs it shows. Pass the set the host and Out mask with (a
	// DryRunHost's Secrets, redact.Set.Writer), so that they learn the
	// generated ones in time. Nil means a set of Init's own.
	Secrets *redact.Set
	// ComposeTimeout bounds `docker compose up --wait`.
	ComposeTimeout time.Duration
	Now            func() time.Time
	Out            io.Writer
}

// Step is one stage of init. Run checks first and acts only on what is
// missing; it reports whether it changed anything.
type Step struct {
	Name string
	Run  func(ctx context.Context, r *initRun) (changed bool, err error)
}

// initRun is the state shared by the steps of one run.
type initRun struct {
	h       Host
	o       InitOptions
	c       *config.Config
	files   []render.File
	changed []string // rendered paths written in step 6
	rebuilt bool
}

func (r *initRun) abs(rel string) string {
	return filepath.Join(r.c.Root, filepath.FromSlash(rel))
}

func (r *initRun) printf(format string, args ...any) {
	fmt.Fprintf(r.o.Out, format, args...)
}

// compose returns the docker compose command line for args.
func (r *initRun) compose(args ...string) []string {
	return append([]string{"docker", "compose", "-f", r.abs(render.ComposeFile), "-p", r.c.Project}, args...)
}

func (r *initRun) run(ctx context.Context, argv []string) error {
	return r.h.Run(ctx, argv[0], argv[1:]...)
}

func (r *initRun) query(ctx context.Context, argv []string) ([]byte, error) {
	return r.h.Query(ctx, argv[0], argv[1:]...)
}

// Steps returns init's steps in order.
func Steps() []Step {
	return []Step{
		{"install packages (ufw, fail2ban, docker with compose)", stepPackages},
		{"firewall: SSH first, then 80 and 443, deny the rest", stepFirewall},
		{"fail2ban jail for failed token requests, and log rotation", stepFail2ban},
		{"secrets, token-signing keys and DH parameters", stepSecrets},
		{"TLS certificates", stepCertificates},
		{"render the configuration", stepRender},
		{"build and start the containers", stepCompose},
		{"default ACL rules, the first admin user, and the store for regctl on this host", stepSeed},
		{"certificate renewal schedule", stepRenewal},
	}
}

// StepError is a failed step, with how to carry on.
type StepError struct {
	Step, Of int
	Name     string
	Err      error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d/%d (%s) failed: %v\nfix the cause and run `regctl init` again: finished steps are checked and skipped", e.Step, e.Of, e.Name, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Init runs the steps in order through h and prints progress. It stops at
// the first failing step.
func Init(ctx context.Context, h Host, o InitOptions) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.ComposeTimeout == 0 {
		o.ComposeTimeout = 10 * time.Minute
	}
	if o.AdminUser == "" {
		o.AdminUser = "admin"
	}
	if o.Secrets == nil {
		o.Secrets = &redact.Set{}
	}
	o.Secrets.Add(o.Config.Secrets()...)
	r := &initRun{h: h, o: o, c: o.Config}
	steps := Steps()
	for i, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.printf("[%d/%d] %s\n", i+1, len(steps), st.Name)
		start := o.Now()
		changed, err := st.Run(ctx, r)
		took := o.Now().Sub(start).Round(100 * time.Millisecond)
		var skip *skipped
		switch {
		case errors.As(err, &skip):
			r.printf("      skipped: %s\n", skip.reason)
		case err != nil:
			r.printf("      FAILED after %s\n", took)
			return &StepError{Step: i + 1, Of: len(steps), Name: st.Name, Err: err}
		case changed:
			r.printf("      done in %s\n", took)
		default:
			r.printf("      already in place (%s)\n", took)
		}
	}
	if !o.DryRun {
		r.summary()
	}
	return nil
}

// skipped is a step that does not apply to this run, and why.
type skipped struct{ reason string }

func (s *skipped) Error() string { return "skipped: " + s.reason }

// --- step 1 -----------------------------------------------------------

func stepPackages(ctx context.Context, r *initRun) (bool, error) {
	installed := map[string]bool{}
	out, _ := r.query(ctx, []string{"dpkg-query", "-W", "-f", "${Package} ${Status}\n", "ufw", "fail2ban", "logrotate", "docker-ce"})
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[len(f)-1] == "installed" && f[len(f)-2] == "ok" {
			installed[f[0]] = true
		}
	}
	var missing []string
	for _, p := range []string{"ufw", "fail2ban", "logrotate"} {
		if !installed[p] {
			missing = append(missing, p)
		}
	}
	if _, err := r.query(ctx, []string{"docker", "compose", "version"}); err != nil {
		pkgs, err := r.o.Distro.DockerPackages(installed["docker-ce"])
		if err != nil {
			return false, err
		}
		missing = append(missing, pkgs...)
	}
	changed := false
	if len(missing) > 0 {
		r.printf("      installing %s\n", strings.Join(missing, " "))
		if err := r.run(ctx, []string{"apt-get", "update", "-q"}); err != nil {
			return false, err
		}
		install := append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, missing...)
		if err := r.run(ctx, install); err != nil {
			return false, err
		}
		changed = true
	}
	if out, err := r.query(ctx, []string{"systemctl", "is-active", "docker"}); err != nil || strings.TrimSpace(string(out)) != "active" {
		if err := r.run(ctx, []string{"systemctl", "enable", "--now", "docker"}); err != nil {
			return false, err
		}
		changed = true
	}
	if !r.o.DryRun {
		if err := checkDockerEngine(ctx, r); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// MinDockerEngine is the oldest Docker Engine whose healthchecks take
// start_interval (API 1.44), which the rendered compose.yaml uses so that
// `compose up` waits seconds, not a whole interval, per container.
const MinDockerEngine = 25

// checkDockerEngine refuses a Docker Engine older than MinDockerEngine.
func checkDockerEngine(ctx context.Context, r *initRun) error {
	out, err := r.query(ctx, []string{"docker", "version", "--format", "{{.Server.Version}}"})
	if err != nil {
		return fmt.Errorf("ask dockerd for its version: %w", err)
	}
	v := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err != nil || n < MinDockerEngine {
		return fmt.Errorf("Docker Engine %q is too old: regctl needs %d.0 or later (healthchecks with start_interval); install Docker's docker-ce from Docker's apt repository, then run regctl init again", v, MinDockerEngine) //nolint:staticcheck // ST1005: the message starts with the product name, "Docker Engine"
	}
	return nil
}

// --- step 2 -----------------------------------------------------------

// syncOnly writes the rendered files at paths (and their directories).
func (r *initRun) syncOnly(ctx context.Context, paths ...string) (bool, error) {
	var sub []render.File
	for _, f := range r.files {
		if slices.Contains(paths, f.Path) {
			sub = append(sub, f)
		}
	}
	return r.sync(ctx, sub)
}

func (r *initRun) sync(ctx context.Context, files []render.File) (bool, error) {
	s := &Syncer{Host: r.h, Root: r.c.Root, Now: r.o.Now, Secrets: r.o.Secrets, Indent: "      "}
	if !r.o.DryRun {
		s.Out = r.o.Out
	}
	p, err := s.Plan(files)
	if err != nil {
		return false, err
	}
	res, err := s.Apply(ctx, p, ApplyOptions{Force: r.o.Force, Confirm: r.o.Confirm})
	if err != nil {
		return false, err
	}
	r.changed = append(r.changed, res.Written...)
	if res.Backups != "" {
		r.printf("      previous versions kept in %s\n", res.Backups)
	}
	return len(p.Pending()) > 0, nil
}

// prepare renders the files the early steps install. Secrets are not
// needed for them, so placeholders stand in until step 6.
func (r *initRun) prepare() error {
	if r.files != nil {
		return nil
	}
	files, err := render.Files(r.c, render.Secrets{
		MongoPassword: "placeholder", RegistryHTTPSecret: "placeholder", TokenBundle: []byte("placeholder"),
	}, r.o.Render)
	if err != nil {
		return err
	}
	r.files = files
	return nil
}

func stepFirewall(ctx context.Context, r *initRun) (bool, error) {
	if err := r.prepare(); err != nil {
		return false, err
	}
	changed, err := r.syncOnly(ctx, path.Dir(render.UFWScriptFile), render.UFWScriptFile)
	if err != nil {
		return false, err
	}
	out, _ := r.query(ctx, []string{"ufw", "status", "verbose"})
	if UFWComplete(string(out), r.c.SSH.Port) {
		return changed, nil
	}
	if err := r.run(ctx, []string{"sh", r.abs(render.UFWScriptFile)}); err != nil {
		return false, err
	}
	return true, nil
}

// UFWComplete reports whether `ufw status verbose` shows the firewall
// active, denying incoming by default, and allowing SSH, 80 and 443.
func UFWComplete(status string, sshPort int) bool {
	if !strings.Contains(status, "Status: active") || !strings.Contains(status, "deny (incoming)") {
		return false
	}
	want := map[string]bool{fmt.Sprintf("%d/tcp", sshPort): false, "80/tcp": false, "443/tcp": false}
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "ALLOW" && f[2] == "IN" {
			if _, ok := want[f[0]]; ok {
				want[f[0]] = true
			}
		}
	}
	for _, ok := range want {
		if !ok {
			return false
		}
	}
	return true
}

// --- step 3 -----------------------------------------------------------

// install copies a rendered file to its place outside the root unless it is
// already there.
func (r *initRun) install(rel, dst string) (bool, error) {
	f := render.Find(r.files, rel)
	if f == nil {
		return false, fmt.Errorf("no rendered %s", rel)
	}
	old, err := r.h.ReadFile(dst)
	if err == nil && bytes.Equal(old, f.Data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := ensureDirMode(r.h, filepath.Dir(dst), render.ModeDir, false); err != nil {
		return false, err
	}
	if err := r.h.WriteFile(dst, f.Data, f.Mode); err != nil {
		return false, err
	}
	return true, nil
}

func (r *initRun) systemd() bool {
	fi, err := r.h.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// stepFail2ban installs the fail2ban jail on nginx's token log, and the
// logrotate rule for that log and the others the stack writes on the host.
func stepFail2ban(ctx context.Context, r *initRun) (bool, error) {
	if err := r.prepare(); err != nil {
		return false, err
	}
	changed, err := r.syncOnly(ctx, path.Dir(render.JailFile), render.JailFile, path.Dir(render.FilterFile), render.FilterFile, render.NginxLogDir,
		path.Dir(render.LogrotateFile), render.LogrotateFile)
	if err != nil {
		return false, err
	}
	// logrotate reads /etc/logrotate.d at each run: nothing to reload.
	rotation, err := r.install(render.LogrotateFile, render.InstalledLogrotate)
	if err != nil {
		return false, err
	}
	changed = changed || rotation
	// fail2ban refuses a jail whose log file does not exist yet.
	if ok, err := Exists(r.h, r.abs(render.AuthLogFile)); err != nil {
		return false, err
	} else if !ok {
		if err := r.h.WriteFile(r.abs(render.AuthLogFile), nil, render.ModeFile); err != nil {
			return false, err
		}
		changed = true
	}
	installed := false
	for _, f := range [][2]string{{render.FilterFile, render.InstalledFilter}, {render.JailFile, render.InstalledJail}} {
		c, err := r.install(f[0], f[1])
		if err != nil {
			return false, err
		}
		installed = installed || c
	}
	_, statusErr := r.query(ctx, []string{"fail2ban-client", "status", "regctl-auth"})
	if !installed && statusErr == nil {
		return changed, nil
	}
	if r.systemd() {
		if err := r.run(ctx, []string{"systemctl", "enable", "--now", "fail2ban"}); err != nil {
			return false, err
		}
	}
	if err := r.run(ctx, []string{"fail2ban-client", "reload"}); err != nil {
		return false, err
	}
	return true, nil
}

// --- step 4 -----------------------------------------------------------

func (r *initRun) secretFiles() SecretFiles {
	return SecretFiles{Host: r.h, Config: r.c, Known: r.o.Secrets, Join: r.o.Join}
}

func stepSecrets(_ context.Context, r *initRun) (bool, error) {
	gen, err := r.secretFiles().Ensure(r.o.Now())
	if err != nil {
		return false, err
	}
	for _, g := range gen {
		r.printf("      generated %s\n", r.abs(g))
	}
	return len(gen) > 0, nil
}

// --- step 5 -----------------------------------------------------------

// SelfSignedValidity is how long --self-signed certificates last.
const SelfSignedValidity = 365 * 24 * time.Hour

func stepCertificates(ctx context.Context, r *initRun) (bool, error) {
	var obtain []string
	changed := false
	for _, name := range r.c.Names() {
		cert, err := r.h.ReadFile(r.abs(render.CertFile(name)))
		switch {
		case err == nil:
			self, perr := IsSelfSigned(cert)
			if perr != nil {
				return false, fmt.Errorf("%s: %w", r.abs(render.CertFile(name)), perr)
			}
			if self && !r.o.SelfSigned {
				obtain = append(obtain, name)
			}
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return false, err
		}
		if !r.o.SelfSigned {
			obtain = append(obtain, name)
			continue
		}
		certPEM, keyPEM, err := SelfSigned([]string{name}, r.o.Now(), SelfSignedValidity)
		if err != nil {
			return false, err
		}
		r.o.Secrets.Add(string(keyPEM))
		dir := r.abs(path.Dir(render.CertFile(name)))
		if err := ensureDirMode(r.h, r.abs(render.LiveDir), render.ModeSecretDir, true); err != nil {
			return false, err
		}
		if err := r.h.Mkdir(dir, render.ModeSecretDir); err != nil {
			return false, err
		}
		if err := r.h.WriteFile(r.abs(render.CertKeyFile(name)), keyPEM, render.ModeSecret); err != nil {
			return false, err
		}
		if err := r.h.WriteFile(r.abs(render.CertFile(name)), certPEM, render.ModeFile); err != nil {
			return false, err
		}
		r.printf("      self-signed certificate for %s\n", name)
		changed = true
	}
	// One certificate per name: nginx reads certs/live/NAME/ for each.
	for _, name := range obtain {
		argv := []string{r.o.Self}
		if r.o.Render.ConfigPath != "" {
			argv = append(argv, "--config", r.o.Render.ConfigPath)
		}
		argv = append(argv, "certs", "obtain")
		argv = append(argv, render.CertsFlags(r.c)...)
		argv = append(argv, name)
		if err := r.run(ctx, argv); err != nil {
			return false, fmt.Errorf("%w\n(until ACME works here, `regctl init --self-signed` gets the registry running)", err)
		}
		changed = true
	}
	return changed, nil
}

// --- step 6 -----------------------------------------------------------

func stepRender(ctx context.Context, r *initRun) (bool, error) {
	s, err := r.secretFiles().Load()
	if err != nil {
		return false, err
	}
	files, err := render.Files(r.c, s, r.o.Render)
	if err != nil {
		return false, err
	}
	r.files = files
	return r.sync(ctx, files)
}

// --- step 7 -----------------------------------------------------------

// ComposeService is one line of `docker compose ps --format json`.
type ComposeService struct {
	Service string `json:"Service"`
	State   string `json:"State"`
	Health  string `json:"Health"`
	Labels  string `json:"Labels"`
}

// ParseComposePS reads `docker compose ps --format json`: a JSON array
// (compose before 2.21) or one object per line.
func ParseComposePS(out []byte) ([]ComposeService, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil, nil
	}
	if out[0] == '[' {
		var svcs []ComposeService
		err := json.Unmarshal(out, &svcs)
		return svcs, err
	}
	var svcs []ComposeService
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var s ComposeService
		if err := dec.Decode(&s); err != nil {
			return nil, err
		}
		svcs = append(svcs, s)
	}
	return svcs, nil
}

// configHash returns the com.docker.compose.config-hash label of s.
func (s ComposeService) configHash() string {
	for _, kv := range strings.Split(s.Labels, ",") {
		if v, ok := strings.CutPrefix(kv, "com.docker.compose.config-hash="); ok {
			return v
		}
	}
	return ""
}

// services are the compose services this configuration runs.
func (r *initRun) services() []string {
	tokens, _ := r.c.TokenReplicas()
	svcs := append([]string{"nginx", "registry"}, tokens...)
	if r.c.ManagedMongo() {
		svcs = append(svcs, "mongo")
	}
	return svcs
}

// composeState reports which services have a container at all, and
// whether every service runs, is healthy and runs the current definition.
func (r *initRun) composeState(ctx context.Context) (existing map[string]bool, healthy bool, err error) {
	existing = map[string]bool{}
	out, qerr := r.query(ctx, r.compose("ps", "--all", "--format", "json"))
	if qerr != nil {
		return existing, false, nil
	}
	svcs, err := ParseComposePS(out)
	if err != nil {
		return existing, false, fmt.Errorf("docker compose ps: %w", err)
	}
	hashes := map[string]string{}
	if out, err := r.query(ctx, r.compose("config", "--hash", "*")); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				hashes[f[0]] = f[1]
			}
		}
	}
	good := map[string]bool{}
	for _, s := range svcs {
		existing[s.Service] = true
		if s.State == "running" && s.Health == "healthy" && (hashes[s.Service] == "" || hashes[s.Service] == s.configHash()) {
			good[s.Service] = true
		}
	}
	for _, want := range r.services() {
		if !good[want] {
			return existing, false, nil
		}
	}
	return existing, true, nil
}

// ImageLabel is the label of the token server image that records the
// SHA-256 of the regctl binary inside it.
const ImageLabel = "io.regctl.binary.sha256"

func stepCompose(ctx context.Context, r *initRun) (bool, error) {
	changed := false
	image := r.c.Project + "-regctl:local"
	df := render.Find(r.files, render.DockerfileFile)
	want := ""
	if df != nil {
		if _, after, ok := strings.Cut(string(df.Data), ImageLabel+`="`); ok {
			want, _, _ = strings.Cut(after, `"`)
		}
	}
	out, err := r.query(ctx, []string{"docker", "image", "inspect", "--format", `{{index .Config.Labels "` + ImageLabel + `"}}`, image})
	if err != nil || want == "" || strings.TrimSpace(string(out)) != want {
		if err := r.run(ctx, r.compose("build", "regctl")); err != nil {
			return false, err
		}
		changed, r.rebuilt = true, true
	}
	// docker compose recreates a network whose settings changed only from
	// version 2.31 on; an older one keeps the network, and nginx's address
	// is not on it. Removing the containers and the network first works
	// with any version (the data is in bind mounts).
	recreate := false
	if subnet, ok := r.networkSubnet(ctx); ok && subnet != render.NewNetworkData(r.c).Subnet {
		r.printf("      the compose network has subnet %s, not %s: removing the containers and the network to recreate them\n", subnet, r.c.Network.Subnet)
		if err := r.run(ctx, r.compose("down")); err != nil {
			return false, err
		}
		changed, recreate = true, true
	}
	existing, healthy, err := r.composeState(ctx)
	if err != nil {
		return false, err
	}
	if recreate {
		existing, healthy = map[string]bool{}, false
	}
	wait := []string{"up", "-d", "--wait", "--wait-timeout", fmt.Sprint(int(r.o.ComposeTimeout.Seconds()))}
	if !healthy || r.rebuilt {
		if err := r.run(ctx, r.compose(wait...)); err != nil {
			return false, fmt.Errorf("%w\n(see `%s` for why)", err, strings.Join(r.compose("logs", "--tail", "50"), " "))
		}
		changed = true
	}
	// Containers that ran before read the files that changed in step 6
	// only when restarted; nginx reloads without dropping connections.
	var restart []string
	reload := false
	for _, p := range r.changed {
		switch top, _, _ := strings.Cut(p, "/"); top {
		case "nginx", "certs":
			reload = true
		case "registry":
			restart = appendUnique(restart, "registry")
		case "token", "keys":
			tokens, _ := r.c.TokenReplicas()
			for _, svc := range tokens {
				restart = appendUnique(restart, svc)
			}
		}
	}
	restart = slices.DeleteFunc(restart, func(s string) bool { return !existing[s] })
	// The token server's replicas one at a time, each healthy before the
	// next goes, and nginx told its new address in between: the others
	// answer meanwhile (with one replica, token requests fail until it is
	// back, as with any single server).
	tokens, _ := r.c.TokenReplicas()
	var others []string
	for _, svc := range restart {
		if !slices.Contains(tokens, svc) {
			others = append(others, svc)
		}
	}
	forceRecreate := func(svcs ...string) error {
		if err := r.run(ctx, r.compose(append(wait, append([]string{"--force-recreate"}, svcs...)...)...)); err != nil {
			return err
		}
		// nginx resolves upstream names when it loads its configuration.
		changed, reload = true, true
		return nil
	}
	reloadNginx := func() error {
		if !reload || !existing["nginx"] {
			return nil
		}
		reload = false
		changed = true
		return r.run(ctx, r.compose("exec", "-T", "nginx", "nginx", "-s", "reload"))
	}
	if len(others) > 0 {
		if err := forceRecreate(others...); err != nil {
			return false, err
		}
	}
	for _, svc := range restart {
		if !slices.Contains(tokens, svc) {
			continue
		}
		if err := forceRecreate(svc); err != nil {
			return false, err
		}
		if err := reloadNginx(); err != nil {
			return false, err
		}
	}
	if err := reloadNginx(); err != nil {
		return false, err
	}
	return changed, nil
}

// networkSubnet returns the IPv4 subnets of the project's default network
// (one, normally), if the network exists.
func (r *initRun) networkSubnet(ctx context.Context) (string, bool) {
	out, err := r.query(ctx, []string{"docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", r.c.Project + "_default"})
	if err != nil {
		return "", false
	}
	var v4 []string
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
			v4 = append(v4, f)
		}
	}
	return strings.Join(v4, " "), true
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// --- step 8 -----------------------------------------------------------

// AdminMarker records that step 8 created the first admin user.
const AdminMarker = ".regctl/admin-created"

// StorePointer is where init leaves the store URL for regctl on the host
// (render.HostStoreURL), so that `regctl user add` and the other commands
// use the deployment's store without --store. Mode 0600: it may hold the
// managed MongoDB's password.
const StorePointer = "/etc/regctl/store"

// writeStorePointer points regctl on the host at the deployment's store.
func (r *initRun) writeStorePointer() (bool, error) {
	s, err := r.secretFiles().Load()
	if err != nil {
		return false, err
	}
	want := []byte(render.HostStoreURL(r.c, s) + "\n")
	if old, err := r.h.ReadFile(StorePointer); err == nil && bytes.Equal(old, want) {
		return false, nil
	}
	if err := ensureDirMode(r.h, filepath.Dir(StorePointer), render.ModeDir, false); err != nil {
		return false, err
	}
	if err := r.h.WriteFile(StorePointer, want, render.ModeSecret); err != nil {
		return false, err
	}
	r.printf("      regctl on this host uses the deployment's store (%s)\n", StorePointer)
	return true, nil
}

// NeedsAdmin reports whether init still has to create the first admin
// user, so the CLI knows whether to ask for a password.
func NeedsAdmin(h Host, c *config.Config) (bool, error) {
	ok, err := Exists(h, filepath.Join(c.Root, filepath.FromSlash(AdminMarker)))
	return !ok, err
}

func stepSeed(ctx context.Context, r *initRun) (bool, error) {
	pointed, err := r.writeStorePointer()
	if err != nil {
		return false, err
	}
	if r.o.Join {
		r.printf("      joining: the first host put the default rules and the first user in the shared store\n")
		return pointed, nil
	}
	need, err := NeedsAdmin(r.h, r.c)
	if err != nil || !need {
		return pointed, err
	}
	if len(r.o.AdminPassword) == 0 {
		return false, errors.New("no password for the first admin user: run init on a terminal or pass --password-stdin")
	}
	// The rules and the user go in through the deployment's own regctl, as
	// every host change goes through r.h (so --dry-run and the tests see
	// them). A run that failed halfway may have done either already:
	// `acl defaults` leaves rules that are in place alone, and whether the
	// user exists is asked (user show), not read from an error's text.
	if err := r.run(ctx, r.compose("exec", "-T", "regctl", "/regctl", "acl", "defaults")); err != nil {
		return false, err
	}
	if _, err := r.query(ctx, r.compose("exec", "-T", "regctl", "/regctl", "user", "show", r.o.AdminUser)); err == nil {
		r.printf("      user %s already exists; left as it is\n", r.o.AdminUser)
	} else {
		add := r.compose("exec", "-T", "regctl", "/regctl", "user", "add", r.o.AdminUser, "--password-stdin",
			"--label", "full-access=*", "--label", "full-access=*/*")
		pw := append(bytes.Clone(r.o.AdminPassword), '\n')
		if err := r.h.RunInput(ctx, pw, add[0], add[1:]...); err != nil {
			return false, err
		}
	}
	if err := ensureDirMode(r.h, r.abs(render.StateDir), render.ModeSecretDir, false); err != nil {
		return false, err
	}
	if err := r.h.WriteFile(r.abs(AdminMarker), []byte(r.o.AdminUser+"\n"), render.ModeSecret); err != nil {
		return false, err
	}
	return true, nil
}

// --- step 9 -----------------------------------------------------------

func stepRenewal(ctx context.Context, r *initRun) (bool, error) {
	if r.o.SelfSigned {
		return false, &skipped{fmt.Sprintf("self-signed certificates are not renewed (run init without --self-signed to use %s)", r.c.ACME.CA)}
	}
	if !r.systemd() {
		return r.install(render.RenewCronFile, render.InstalledRenewCron)
	}
	changed := false
	for _, f := range [][2]string{{render.RenewServiceFile, render.InstalledRenewService}, {render.RenewTimerFile, render.InstalledRenewTimer}} {
		c, err := r.install(f[0], f[1])
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	if changed {
		if err := r.run(ctx, []string{"systemctl", "daemon-reload"}); err != nil {
			return false, err
		}
	}
	out, err := r.query(ctx, []string{"systemctl", "is-enabled", "regctl-renew.timer"})
	active, aerr := r.query(ctx, []string{"systemctl", "is-active", "regctl-renew.timer"})
	if changed || err != nil || aerr != nil || strings.TrimSpace(string(out)) != "enabled" || strings.TrimSpace(string(active)) != "active" {
		if err := r.run(ctx, []string{"systemctl", "enable", "--now", "regctl-renew.timer"}); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

// --- summary ----------------------------------------------------------

func (r *initRun) summary() {
	reg := r.c.Domains.Registry
	r.printf("\nregctl is running at https://%s (token endpoint %s).\n\nNext steps:\n", reg, r.c.Realm())
	r.printf("  docker login %s -u %s\n", reg, r.o.AdminUser)
	r.printf("  docker tag alpine %s/test/alpine && docker push %s/test/alpine\n", reg, reg)
	r.printf("  regctl user add NAME ...       add users (regctl finds the store through %s)\n", StorePointer)
	r.printf("  regctl render --diff           after editing regctl.yaml, then regctl render to apply\n")
	if r.o.SelfSigned {
		for _, n := range r.c.Names() {
			r.printf("  Self-signed: clients must trust %s (copy it to /etc/docker/certs.d/%s/ca.crt)\n", r.abs(render.CertFile(n)), n)
		}
	}
}
