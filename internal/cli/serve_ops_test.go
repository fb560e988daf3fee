package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/token"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeMetricsAndAudit runs `regctl serve` in-process with the metrics
// listener and an audit log: a token request shows up in both, the token
// listener serves no metrics, and shutting down flushes the audit log.
func TestServeMetricsAndAudit(t *testing.T) {
	e := newEnv(t, cmdtest.OpenSQLite(t, time.Now))
	e.f.Now = time.Now
	e.must(0, "s3cret-pw\n", "user", "add", "waldi", "--password-stdin")
	dir := t.TempDir()
	if err := keys.Generate(filepath.Join(dir, "keys"), keys.ES256, time.Now()); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.log")
	listen, metrics := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, e.f, []string{"serve", "--listen", listen, "--issuer", "regctl", "--service", "registry.test",
			"--keys", filepath.Join(dir, "keys"), "--metrics-listen", metrics, "--audit-log", auditPath, "--log-level", "error"})
	}()
	// The token request runs bcrypt at cost 10, which takes seconds under
	// -race on a loaded machine: the timeout only guards against a hang.
	client := &http.Client{Timeout: time.Minute}
	get := func(url string, basic ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("http://" + metrics + "/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("regctl serve did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get("http://"+listen+"/auth/token?service=registry.test", "waldi", "s3cret-pw"); code != 200 {
		t.Fatalf("token request: %d %s", code, body)
	}
	code, body := get("http://" + metrics + "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, want := range []string{
		`regctl_token_requests_total{grant="basic",result="issued"} 1`,
		`regctl_build_info{goversion="go`,
		`regctl_signing_cert_expiry_seconds `,
		`regctl_credential_cache_misses_total 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("http://" + listen + "/metrics"); code != http.StatusNotFound {
		t.Errorf("the token listener answers /metrics with %d, want 404", code)
	}
	cancel()
	select {
	case code := <-done:
		if code != cmdutil.ExitOK {
			t.Fatalf("serve exited %d: %s", code, e.errOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", st.Mode().Perm())
	}
	sc := bufio.NewScanner(f)
	var n int
	for sc.Scan() {
		var rec token.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if rec.User != "waldi" || rec.Result != "issued" || rec.ClientIP != "127.0.0.1" {
			t.Errorf("audit record %+v", rec)
		}
		if strings.Contains(sc.Text(), "s3cret") {
			t.Error("the audit log holds the password")
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d audit lines, want 1", n)
	}
}
