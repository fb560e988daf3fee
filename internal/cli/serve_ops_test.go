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

	"golang.org/x/time/rate"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/token"
)

func TestNewCmdServeOps(t *testing.T) {
	base := []string{"--issuer", "regctl", "--service", "registry.test"}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o *ServeOptions)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, o *ServeOptions) {
			if o.Token.FailLimitIP != token.DefaultFailLimitIP || o.Token.FailLimitAccount != token.DefaultFailLimitAccount {
				t.Errorf("limits %+v %+v, want the defaults", o.Token.FailLimitIP, o.Token.FailLimitAccount)
			}
			if o.Ops != (ServeOps{}) {
				t.Errorf("ops %+v, want none", o.Ops)
			}
		}},
		{name: "all set", args: []string{"--fail-limit-ip", "5/min,burst=10", "--fail-limit-account", "off",
			"--metrics-listen", "127.0.0.1:9101", "--certs-dir", "/opt/regctl/certs", "--audit-log", "-"},
			check: func(t *testing.T, o *ServeOptions) {
				if want := (token.FailLimit{Rate: rate.Limit(5.0 / 60), Burst: 10}); o.Token.FailLimitIP != want {
					t.Errorf("ip limit %+v, want %+v", o.Token.FailLimitIP, want)
				}
				if !o.Token.FailLimitAccount.Off() {
					t.Errorf("account limit %+v, want off", o.Token.FailLimitAccount)
				}
				if want := (ServeOps{MetricsListen: "127.0.0.1:9101", CertsDir: "/opt/regctl/certs", AuditLog: "-"}); o.Ops != want {
					t.Errorf("ops %+v, want %+v", o.Ops, want)
				}
			}},
		{name: "bad ip limit", args: []string{"--fail-limit-ip", "lots"}, wantErr: "--fail-limit-ip: fail limit \"lots\""},
		{name: "bad account limit", args: []string{"--fail-limit-account", "5/min,burst=x"}, wantErr: "--fail-limit-account"},
		{name: "bad metrics address", args: []string{"--metrics-listen", "9101"}, wantErr: "--metrics-listen \"9101\": want HOST:PORT"},
		{name: "metrics on the token address", args: []string{"--listen", "127.0.0.1:5001", "--metrics-listen", "127.0.0.1:5001"},
			wantErr: "--metrics-listen must differ from --listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			var got *ServeOptions
			cmd := NewCmdServe(e.f, func(_ context.Context, o *ServeOptions) error { got = o; return nil })
			cmd.SetArgs(append(append([]string{}, base...), tt.args...))
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

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
