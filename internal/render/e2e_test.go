//go:build integration

package render_test

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render/rendertest"
	"github.com/regctl/regctl/internal/testenv"
)

const classicRules = `- seq: 10
  match: {name: "${labels:full-access}"}
  actions: ["*"]
- seq: 20
  match: {name: "${labels:read-only-access}"}
  actions: ["pull"]
`

// TestEndToEndThroughNginx: real nginx, started from the rendered
// configuration (one domain, "localhost", a self-signed certificate,
// upstreams on loopback), terminates TLS in front of a real registry
// (Debian's distribution 2.8, from the rendered config.yml) and a real
// `regctl serve`. crane, skopeo and docker log in, push and pull through
// it; a client that keeps failing gets rate limited; then fail2ban-regex,
// with the rendered filter, reads the failures and the rate-limited
// requests nginx and regctl serve logged, and nothing else: not the token
// requests without credentials, which clients send as a matter of course.
//
//	go test -tags integration -run TestEndToEndThroughNginx ./internal/render
func TestEndToEndThroughNginx(t *testing.T) {
	mongo := testenv.Require(t, testenv.EnvMongoURI, "the mongodb:// URI of a running FerretDB")
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary")
	regBin := testenv.RequireBinary(t, testenv.EnvRegistry2, "docker-registry", "Debian's docker-registry")
	regctl := testenv.BuildRegctl(t)

	store := testenv.MongoURI(t, mongo, testenv.UniqueName("render_e2e"))
	rc := testenv.Regctl{Bin: regctl, Store: store}
	kd := filepath.Join(t.TempDir(), "keys")
	testenv.MustRun(t, nil, "", regctl, "keys", "generate", "--dir", kd)
	rc.MustRun(t, classicRules, "acl", "import", "-")
	const pw = "waldi-s3cret"
	rc.MustRun(t, pw+"\n", "user", "add", "waldi", "--password-stdin", "--label", "full-access=test/*")

	c := config.Defaults()
	c.Domains.Registry = "localhost"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	stack := rendertest.Start(t, rendertest.StackConfig{
		Config: &c, Regctl: regctl, Store: store, KeysDir: kd, RegistryBin: regBin, Secrets: testSecrets,
	})
	site, serve, host := stack.Site, stack.Serve, stack.Host

	// Failed logins, straight at the token endpoint through nginx.
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodGet, "https://"+host+"/auth/token?service=localhost&scope=repository:test/app:pull", nil)
		req.SetBasicAuth("waldi", "wrong-password")
		resp, err := insecure.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("wrong password through nginx: %d", resp.StatusCode)
		}
	}

	// Token requests without credentials, as every client's first one:
	// 401, but not failed logins.
	for _, q := range []string{"service=localhost&scope=repository:test/app:pull", "service=localhost&account=waldi"} {
		resp, err := insecure.Get("https://" + host + "/auth/token?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("token request without credentials through nginx: %d", resp.StatusCode)
		}
	}

	work := t.TempDir()
	image := testenv.MakeImage(t, crane, work)
	t.Run("crane", func(t *testing.T) {
		env := []string{"DOCKER_CONFIG=" + t.TempDir()}
		testenv.MustRun(t, env, pw, crane, "auth", "login", host, "-u", "waldi", "--password-stdin")
		testenv.MustRun(t, env, "", crane, "push", "--insecure", image, host+"/test/crane:1")
		testenv.MustRun(t, env, "", crane, "pull", "--insecure", host+"/test/crane:1", filepath.Join(t.TempDir(), "img.tar"))
		if r := testenv.Run(t, env, "", crane, "push", "--insecure", image, host+"/prod/crane:1"); r.Code == 0 {
			t.Error("push to prod/ was allowed")
		}
	})
	t.Run("skopeo", func(t *testing.T) {
		skopeo := testenv.RequireBinary(t, "", "skopeo", "Debian's skopeo")
		auth := []string{"REGISTRY_AUTH_FILE=" + filepath.Join(t.TempDir(), "auth.json")}
		if r := testenv.Run(t, auth, "nope\n", skopeo, "login", "--tls-verify=false", "-u", "waldi", "--password-stdin", host); r.Code == 0 {
			t.Error("skopeo login with a wrong password succeeded")
		}
		testenv.MustRun(t, auth, pw+"\n", skopeo, "login", "--tls-verify=false", "-u", "waldi", "--password-stdin", host)
		testenv.MustRun(t, auth, "", skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", "docker-archive:"+image, "docker://"+host+"/test/skopeo:1")
		testenv.MustRun(t, auth, "", skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+host+"/test/skopeo:1", "dir:"+t.TempDir())
	})
	t.Run("docker", func(t *testing.T) {
		docker := testenv.RequireBinary(t, "", "docker", "the docker CLI")
		// dockerd trusts registries on loopback addresses without TLS
		// verification, so the self-signed certificate is accepted.
		env := []string{"DOCKER_HOST=" + testenv.Dockerd(t), "DOCKER_CONFIG=" + t.TempDir()}
		r := testenv.MustRun(t, env, pw, docker, "login", host, "-u", "waldi", "--password-stdin")
		if !strings.Contains(r.Output(), "Login Succeeded") {
			t.Errorf("docker login: %s", r.Output())
		}
		ref := host + "/test/docker:1"
		testenv.MustRun(t, env, "", docker, "import", testenv.MakeLayer(t, t.TempDir()), ref)
		testenv.MustRun(t, env, "", docker, "push", ref)
		testenv.MustRun(t, env, "", docker, "rmi", ref)
		testenv.MustRun(t, env, "", docker, "pull", ref)
		testenv.Run(t, env, "", docker, "rmi", ref)
	})

	// A client that keeps failing is rate limited by regctl serve (429 once
	// the default --fail-limit-ip's burst of 20 failures is used up); nginx
	// logs the 429s, and they count toward a ban too.
	limited := 0
	for i := 0; i < 40 && limited < 3; i++ {
		req, _ := http.NewRequest(http.MethodGet, "https://"+host+"/auth/token?service=localhost", nil)
		req.SetBasicAuth("waldi", "wrong-password")
		resp, err := insecure.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			limited++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("wrong password through nginx: %d", resp.StatusCode)
		}
	}
	if limited < 3 {
		t.Fatalf("%d rate-limited answers after 40 wrong passwords, want 3", limited)
	}

	// fail2ban: everything nginx and regctl serve logged as a failed login
	// or a rate-limited token request matches, from the client's address;
	// nothing else does, the requests without credentials included.
	authLog, err := os.ReadFile(site.Data.AuthLog)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(authLog), " status=401 login=- "); n < 2 {
		t.Errorf("nginx logged %d token requests without credentials, want at least 2:\n%s", n, authLog)
	}
	if n := strings.Count(serve.Proc.Log(0), `msg="credentials required"`); n < 2 {
		t.Errorf("regctl serve logged %d token requests without credentials, want at least 2", n)
	}
	checkF2B(t, &c, "nginx token log", string(authLog), func(l string) bool {
		return strings.Contains(l, " status=401 login=failed ") || strings.Contains(l, " status=429 ")
	}, 3+3)
	checkF2B(t, &c, "regctl serve log", serve.Proc.Log(0), func(l string) bool {
		return strings.Contains(l, `msg="authentication failed"`) || strings.Contains(l, `msg="rate limited"`)
	}, 3+3)
	main, err := os.ReadFile(site.Data.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(main), `"GET /v2/ HTTP/1.1" 401`) {
		t.Errorf("no normal 401 on /v2/ in the main log")
	}
	checkF2B(t, &c, "nginx main log", string(main), func(string) bool { return false }, 0)
}

// checkF2B runs fail2ban-regex on log and checks that it matches exactly
// the lines failed() selects (at least minN of them), all from 127.0.0.1,
// and that the other lines alone match nothing.
func checkF2B(t *testing.T, c *config.Config, name, log string, failed func(string) bool, minN int) {
	t.Helper()
	var failures, others []string
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if failed(l) {
			failures = append(failures, l)
		} else {
			others = append(others, l)
		}
	}
	if len(failures) < minN {
		t.Errorf("%s: %d failure lines, want at least %d:\n%s", name, len(failures), minN, log)
	}
	dir := t.TempDir()
	all := filepath.Join(dir, "all.log")
	writeFile(t, all, []byte(log), 0o644)
	res := fail2banRegex(t, all, c)
	if res.matched != len(failures) {
		t.Errorf("%s: fail2ban-regex matched %d lines, want the %d failures:\n%s", name, res.matched, len(failures), strings.Join(failures, "\n"))
	}
	for _, h := range res.hosts {
		if h != "127.0.0.1" {
			t.Errorf("%s: fail2ban-regex found host %s, want 127.0.0.1", name, h)
		}
	}
	rest := filepath.Join(dir, "rest.log")
	writeFile(t, rest, []byte(strings.Join(others, "\n")+"\n"), 0o644)
	if res := fail2banRegex(t, rest, c); res.matched != 0 {
		t.Errorf("%s: fail2ban-regex matched %d lines that are not failed token requests", name, res.matched)
	}
}
