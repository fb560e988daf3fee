package token

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

func TestAuditLog(t *testing.T) {
	f := newFixture(t)
	var buf testenv.SyncBuffer
	a := NewAuditLog(&buf, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.srv.SetAudit(a)

	get := func(user, pass, ua string, sc ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/auth/token?"+scopes(sc...).Encode(), nil)
		req.SetBasicAuth(user, pass)
		req.Header.Set("User-Agent", ua)
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec
	}
	// waldi: rule 10 (full-access label) for test/app, nothing for prod/x.
	tok := get("waldi", "waldi-secret", "docker/27.0 go/1.22", "repository:test/app:pull,push", "repository:prod/x:pull")
	if tok.Code != 200 {
		t.Fatalf("waldi: %d", tok.Code)
	}
	// bob: its grant team/* and no rule.
	get("bob", "bob-secret", "crane", "repository:team/app:push")
	// A failure.
	get("waldi", "hunter2-not-it", strings.Repeat("x", 1000))
	// A refresh grant.
	f.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"regctl1.bogus.sig"}, "service": {testService}})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	out := buf.String()
	var recs []AuditRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 4 {
		t.Fatalf("%d audit lines, want 4:\n%s", len(recs), out)
	}
	ten := int64(10)
	want := []AuditRecord{
		{Time: f.clock.Now(), User: "waldi", ClientIP: "192.0.2.1", UserAgent: "docker/27.0 go/1.22", Grant: "basic", Service: testService,
			Requested: []string{"repository:test/app:pull,push", "repository:prod/x:pull"},
			Granted:   []string{"repository:test/app:pull,push"},
			DecidedBy: []DecidedBy{{Scope: "repository:test/app", Rule: &ten}, {Scope: "repository:prod/x"}},
			Result:    "issued", Status: 200},
		{Time: f.clock.Now(), User: "bob", ClientIP: "192.0.2.1", UserAgent: "crane", Grant: "basic", Service: testService,
			Requested: []string{"repository:team/app:push"}, Granted: []string{"repository:team/app:push"},
			DecidedBy: []DecidedBy{{Scope: "repository:team/app", Grants: []string{"team/*"}}},
			Result:    "issued", Status: 200},
		{Time: f.clock.Now(), User: "waldi", ClientIP: "192.0.2.1", UserAgent: strings.Repeat("x", auditMaxUA), Grant: "basic", Service: testService,
			Requested: []string{}, Granted: []string{}, Result: "unauthorized", Status: 401, Reason: "wrong password"},
		{Time: f.clock.Now(), User: "", ClientIP: "192.0.2.1", UserAgent: "", Grant: "refresh_token", Service: testService,
			Requested: []string{}, Granted: []string{}, Result: "unauthorized", Status: 401, Reason: "invalid refresh token"},
	}
	for i := range want {
		if !reflect.DeepEqual(recs[i], want[i]) {
			g, _ := json.Marshal(recs[i])
			w, _ := json.Marshal(want[i])
			t.Errorf("line %d:\n got %s\nwant %s", i, g, w)
		}
	}
	// Never a secret.
	var resp tokenResponse
	_ = json.Unmarshal(tok.Body.Bytes(), &resp)
	for _, secret := range []string{"waldi-secret", "bob-secret", "hunter2", resp.Token, "regctl1.bogus", "Basic "} {
		if strings.Contains(out, secret) {
			t.Errorf("the audit log holds %.12q", secret)
		}
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

// TestAuditLogNeverBlocks: with the writer stuck, requests still finish,
// each waiting at most maxWait once the queue is full, and the lost lines
// are counted.
func TestAuditLogNeverBlocks(t *testing.T) {
	f := newFixture(t)
	w := blockingWriter{release: make(chan struct{})}
	a := NewAuditLog(w, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a.maxWait = 2 * time.Millisecond
	f.srv.SetAudit(a)
	// The writer buffers up to 64 KiB before it blocks, then the queue
	// fills; everything after that is dropped.
	const n = auditQueue + 2000
	var slowest time.Duration
	start := time.Now()
	for range n {
		t0 := time.Now()
		f.get("", "", scopes()) // anonymous: cheap 401s
		slowest = max(slowest, time.Since(t0))
	}
	elapsed := time.Since(start)
	close(w.release)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := a.Dropped(); d < 1000 || d >= 2000 {
		t.Errorf("dropped %d lines, want 2000 less what the writer buffered", d)
	}
	// Blocking would hang the loop above for good (the writer is stuck
	// until released); the bound only absorbs a loaded machine.
	if slowest > 10*time.Second {
		t.Errorf("the slowest request took %s with the audit writer stuck", slowest)
	}
	t.Logf("%d requests with a stuck audit writer: %s, slowest %s, %d lines dropped", n, elapsed.Round(time.Millisecond), slowest.Round(time.Microsecond), a.Dropped())
}
