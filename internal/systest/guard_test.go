//go:build integration

package systest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/freshhost"
)

// guardLock is the lock `regctl init` holds while it runs
// (provision.InitLockPath).
const guardLock = "/run/regctl-init.lock"

// The jail's settings for this test, in regctl.yaml (fail2ban.*): the
// defaults are 10 tries and a ban of 1h.
const (
	guardMaxRetry = 6
	guardBanTime  = 40 * time.Second
)

// TestInitGuardsFreshHost: what keeps `regctl init` and the stack it
// builds from harm, on one fresh host (Full: docker preinstalled, images
// from the mirror):
//
//  1. a program on port 80 stops init at preflight, named with its PID;
//  2. a second init while one runs is refused at once by the init lock,
//     and the first one finishes;
//  3. an address that keeps failing token requests is banned by fail2ban
//     (it cannot connect to 443), another address still pushes, and the
//     ban expires.
func TestInitGuardsFreshHost(t *testing.T) {
	freshhost.RequireMachine(t)
	t.Parallel()
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	a := freshhost.Cache(t)

	h := bootRegctlHost(t, freshhost.Options{
		Variant:   freshhost.Full,
		MountRepo: true,
	})
	h.Mirror(t, a.Images.Nginx, a.Images.Registry) // compose pulls them as from Docker Hub
	d := newDeployment(t, h, crane)
	h.WriteRegctlYAML(t, registryName, "backend: sqlite",
		"fail2ban:\n  maxretry: "+strconv.Itoa(guardMaxRetry)+"\n  bantime: "+guardBanTime.String()+"\n")

	if !t.Run("port-80-taken", d.guardPortTaken) {
		t.FailNow()
	}
	if !t.Run("second-init-locked-out", d.guardSecondInit) {
		t.FailNow()
	}
	t.Run("fail2ban-ban-and-expiry", d.guardFail2ban)
}

// guardPortTaken: python3's web server on port 80 stops init at preflight,
// named with its PID, and nothing is installed; once it stops, init may go on.
func (d *deployment) guardPortTaken(t *testing.T) {
	h := d.h
	h.MustRun(t, "", "systemd-run", "--unit=guard-http", "--property=WorkingDirectory=/tmp", "python3", "-m", "http.server", "80")
	var pid string
	if err := testenv.Poll(60*time.Second, 250*time.Millisecond, func() error {
		r := h.Run(t, "", "sh", "-c", `ss -Hltn 'sport = :80' | grep -q . && systemctl show -p MainPID --value guard-http`)
		if p := strings.TrimSpace(r.Stdout); r.Code != 0 || p == "" || p == "0" {
			return fmt.Errorf("nothing listens on port 80 yet (exit %d): %s", r.Code, r.Output())
		}
		pid = strings.TrimSpace(r.Stdout)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	comm := strings.TrimSpace(string(h.ReadFile(t, "/proc/"+pid+"/comm")))

	r, took := d.init(t, "--self-signed")
	t.Logf("TIMING init stopped by a taken port 80: %s", took.Round(time.Millisecond))
	want := fmt.Sprintf("port 80 is in use by %s (pid %s)", comm, pid)
	if r.Code == 0 || !strings.Contains(r.Stderr, "FAIL ports") || !strings.Contains(r.Stderr, want) {
		t.Errorf("init with port 80 taken: exit %d, want preflight to fail with %q\n%s", r.Code, want, r.Output())
	}
	if !strings.Contains(r.Stderr, "preflight checks failed") || strings.Contains(r.Stderr, "[1/9]") {
		t.Errorf("init went past preflight:\n%s", r.Stderr)
	}
	if r := h.Run(t, "", "test", "-e", "/opt/regctl"); r.Code == 0 {
		t.Errorf("init stopped at preflight but created /opt/regctl")
	}
	h.MustRun(t, "", "systemctl", "stop", "guard-http")
	if err := testenv.Poll(30*time.Second, 250*time.Millisecond, func() error {
		if r := h.Run(t, "", "sh", "-c", `ss -Hltn 'sport = :80' | grep -q .`); r.Code == 0 {
			return errors.New("port 80 still taken")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// guardSecondInit: a second init, started while the first holds the lock,
// stops at once naming the lock, and the first one completes.
func (d *deployment) guardSecondInit(t *testing.T) {
	h := d.h
	type result struct {
		r    testenv.Result
		took time.Duration
	}
	done := make(chan result, 1)
	started := time.Now()
	go func() {
		var res result
		defer func() { done <- res }() // also if Exec gives up on the test
		res.r, res.took = d.init(t, "--self-signed")
	}()

	// The first holds the lock once /proc/locks lists the lock file's
	// inode (the file exists already: the preflight run above made it).
	held := `ino=$(stat -c %i ` + guardLock + `) && grep -q ":$ino " /proc/locks`
	if err := testenv.Poll(2*time.Minute, 100*time.Millisecond, func() error {
		select {
		case res := <-done:
			done <- res
			return fmt.Errorf("the first init ended before the second could start: exit %d", res.r.Code)
		default:
		}
		if r := h.Run(t, "", "sh", "-c", held); r.Code != 0 {
			return errors.New("the first init does not hold the lock yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING first init holds the lock after: %s", time.Since(started).Round(time.Millisecond))

	r, took := d.init(t, "--self-signed")
	t.Logf("TIMING second init refused after: %s", took.Round(time.Millisecond))
	firstRunning := false
	select {
	case res := <-done:
		done <- res
	default:
		firstRunning = true
	}
	if !firstRunning {
		t.Errorf("the first init ended while the second ran: the lock was not tested")
	}
	for _, want := range []string{"another regctl init is running", guardLock, "wait until it has finished"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("second init: message lacks %q", want)
		}
	}
	if r.Code == 0 || strings.Contains(r.Stderr, "Preflight:") {
		t.Errorf("second init: exit %d, want it to stop before preflight\n%s", r.Code, r.Output())
	}
	if took > 30*time.Second {
		t.Errorf("second init took %s to give up, want it to fail fast", took)
	}

	res := <-done
	t.Logf("TIMING first init (with the second refused meanwhile): %s", res.took.Round(time.Millisecond))
	if res.r.Code != 0 {
		t.Fatalf("first init: exit %d\n%s", res.r.Code, res.r.Output())
	}
	if !strings.Contains(res.r.Stderr, "regctl is running at https://"+registryName) {
		t.Errorf("first init did not finish with its summary:\n%s", res.r.Stderr)
	}
	// The lock went with the first init.
	if r := h.Run(t, "", "sh", "-c", held); r.Code == 0 {
		t.Errorf("the lock is still held after init exited")
	}
}

// guardFail2ban: failed token requests from OuterIP get it banned from
// 443, while a second address of the outside namespace still pushes; the
// ban expires after the jail's bantime.
func (d *deployment) guardFail2ban(t *testing.T) {
	h := d.h
	pw := d.addUser(t, "guard", "--label", "full-access=guard/*")
	if r := d.login(t, "guard", pw); r.Code != 0 {
		t.Fatalf("login: %s", r.Output())
	}
	if err := testenv.Poll(60*time.Second, time.Second, func() error {
		if r := d.push(t, "guard", "guard/app:1"); r.Code != 0 {
			return fmt.Errorf("push: exit %d: %s", r.Code, lastLine(r.Output()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The jail runs with regctl.yaml's settings.
	for key, want := range map[string]int{"maxretry": guardMaxRetry, "bantime": int(guardBanTime.Seconds())} {
		if r := h.MustRun(t, "", "fail2ban-client", "get", "regctl-auth", key); strings.TrimSpace(r.Stdout) != strconv.Itoa(want) {
			t.Fatalf("fail2ban-client get regctl-auth %s = %q, want %d from regctl.yaml", key, strings.TrimSpace(r.Stdout), want)
		}
	}
	maxretry := guardMaxRetry

	// A second address outside, on the same link.
	first := h.OuterIP
	second := first.Next()
	h.MustOutside(t, "", "ip", "addr", "add", second.String()+"/"+strconv.Itoa(h.Prefix.Bits()), "dev", h.OuterIface)
	if !guardConnects(t, h, second) || !guardConnects(t, h, first) {
		t.Fatal("443 does not answer before any failure")
	}

	// Failed token requests from the first address, under an account
	// that does not exist (guard's own stays unlimited), until the
	// address cannot connect any more.
	bad := guardClient(h, first)
	realm := "https://" + registryName + "/auth/token?service=" + url.QueryEscape(registryName) + "&scope=" + url.QueryEscape("repository:guard/app:pull")
	banStart := time.Now()
	var statuses []string
	banned := false
	var sent []time.Time // each request's start
	for i := 0; i < 3*maxretry && !banned; i++ {
		sent = append(sent, time.Now())
		code, err := guardGet(t.Context(), bad, realm, "mallory", "wrong-"+strconv.Itoa(i))
		switch {
		case err != nil:
			statuses = append(statuses, "error")
			banned = !guardConnects(t, h, first)
		default:
			statuses = append(statuses, strconv.Itoa(code))
			if i >= maxretry {
				time.Sleep(500 * time.Millisecond) // fail2ban reads the log
				banned = !guardConnects(t, h, first)
			}
		}
	}
	if !banned {
		if err := testenv.Poll(60*time.Second, time.Second, func() error {
			if guardDial(t, h, first, "443") == nil {
				return fmt.Errorf("%s still connects to 443", first)
			}
			return nil
		}); err != nil {
			h.Run(t, "", "fail2ban-client", "status", "regctl-auth")
			h.Run(t, "", "tail", "-n", "30", "/opt/regctl/logs/nginx/auth.log")
			t.Fatalf("%v after %d failed token requests (answers %v)", err, len(statuses), statuses)
		}
	}
	bannedAt := time.Now()
	t.Logf("TIMING ban: %s after the first failed token request, %d requests (answers %v)", bannedAt.Sub(banStart).Round(time.Millisecond), len(statuses), statuses)
	if r := h.MustRun(t, "", "fail2ban-client", "status", "regctl-auth"); !strings.Contains(r.Stdout, first.String()) {
		t.Errorf("fail2ban does not list %s as banned:\n%s", first, r.Stdout)
	}
	for _, port := range []string{"443", "80"} {
		if guardConnectsPort(t, h, first, port) {
			t.Errorf("banned %s still connects to %s", first, port)
		}
	}

	// The other address: a token with the right password, then a push
	// with crane, whose connections leave from it by a route.
	good := guardClient(h, second)
	if code, err := guardGet(t.Context(), good, realm, "guard", pw); err != nil || code != http.StatusOK {
		t.Errorf("token request from %s: %d %v, want 200", second, code, err)
	}
	route := h.IP.String() + "/32"
	h.MustOutside(t, "", "ip", "route", "replace", route, "dev", h.OuterIface, "src", second.String())
	pushStart := time.Now()
	fresh := testenv.MakeImage(t, d.cbin, t.TempDir()) // new blobs: a real upload
	r := d.crane(t, "guard", "push", fresh, registryName+"/guard/app:2")
	h.MustOutside(t, "", "ip", "route", "del", route)
	if r.Code != 0 {
		t.Errorf("push from %s while %s is banned: exit %d\n%s", second, first, r.Code, r.Output())
	} else {
		t.Logf("TIMING push from the other address during the ban: %s", time.Since(pushStart).Round(time.Millisecond))
	}
	if guardConnects(t, h, first) && time.Since(bannedAt) < guardBanTime-5*time.Second {
		t.Errorf("%s connects again already, %s into a %s ban", first, time.Since(bannedAt).Round(time.Second), guardBanTime)
	}

	// The ban expires: bantime, plus fail2ban's and the checks' latency.
	if err := testenv.Poll(guardBanTime+2*time.Minute, time.Second, func() error {
		return guardDial(t, h, first, "443")
	}); err != nil {
		h.Run(t, "", "fail2ban-client", "status", "regctl-auth")
		t.Fatal(err)
	}
	// fail2ban counts the bantime from the logged time of the failure
	// that reached maxretry (nginx logs whole seconds).
	trigger := sent[min(maxretry, len(sent))-1]
	t.Logf("TIMING ban expired: %s after the ban was seen, %s after the request that reached maxretry (bantime %s)",
		time.Since(bannedAt).Round(time.Millisecond), time.Since(trigger).Round(time.Millisecond), guardBanTime)
	if lasted := time.Since(trigger); lasted < guardBanTime-3*time.Second {
		t.Errorf("the ban ended %s after the request that reached maxretry, short of its bantime %s", lasted, guardBanTime)
	}
	// Served again: an answer to an anonymous /v2/ request.
	resp, err := bad.Get("https://" + registryName + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ from %s after the ban: %v", first, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ from %s after the ban: %s, want 401", first, resp.Status)
	}
}

// guardConnects reports whether TCP 443 of the host accepts a connection
// from local (an address of the outside namespace) within 3 seconds.
func guardConnects(t *testing.T, h *freshhost.Host, local netip.Addr) bool {
	return guardConnectsPort(t, h, local, "443")
}

func guardConnectsPort(t *testing.T, h *freshhost.Host, local netip.Addr, port string) bool {
	t.Helper()
	if err := guardDial(t, h, local, port); err != nil {
		t.Logf("%v", err)
		return false
	}
	return true
}

// guardDial connects from local to the host's port and closes the
// connection; the error says why it could not.
func guardDial(t *testing.T, h *freshhost.Host, local netip.Addr, port string) error {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	conn, err := h.DialFrom(local)(ctx, "tcp", net.JoinHostPort(h.IP.String(), port))
	if err != nil {
		return fmt.Errorf("connect from %s to %s: %w", local, port, err)
	}
	return conn.Close()
}

// guardClient is an HTTPS client connecting from local, in the outside
// namespace, trusting any certificate (the deployment's is self-signed),
// one connection per request.
func guardClient(h *freshhost.Host, local netip.Addr) *http.Client {
	tr := h.Transport()
	tr.DialContext = h.DialFrom(local)
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// guardGet GETs u with basic auth and returns the status.
func guardGet(ctx context.Context, c *http.Client, u, user, pw string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(user, pw)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
