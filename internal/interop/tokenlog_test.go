package interop

// The token flavours of the report: which kind of token request each
// check of each client made, read from the logs the stack writes. A GET's
// flavour is in nginx's access log (the Basic user, and account= in the
// query); a POST's is the grant field of regctl serve's audit log (nginx
// does not log the body). A request belongs to a client by its user (each
// client has users of its own: kindUser) or, without credentials, by the
// repositories its scopes name, and to a check by when it came: a
// client's checks run one after another.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// harnessUA is the User-Agent of the harness's own requests; the token
// flavours leave them out.
const harnessUA = "regctl-interop-harness"

// kindUser is the name of kind's user of role.
func kindUser(role, kind string) string { return role + "-" + kind }

// userKind is the client a user belongs to (the longest kind the name
// ends with after a dash), "" for the harness's users.
func userKind(user string) string {
	var best string
	for _, k := range matrixKinds {
		if strings.HasSuffix(user, "-"+k) && len(k) > len(best) {
			best = k
		}
	}
	return best
}

// scopeKinds are the clients whose repositories (interop/KIND/…,
// locked/KIND) the scopes name.
func scopeKinds(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		for _, s := range strings.Fields(sc) {
			parts := strings.SplitN(s, ":", 3)
			if len(parts) != 3 || parts[0] != "repository" {
				continue
			}
			seg := strings.Split(parts[1], "/")
			if len(seg) >= 2 && (seg[0] == "interop" || seg[0] == "locked") {
				out = append(out, seg[1])
			}
		}
	}
	return out
}

// window is one check of one client: where nginx's access log stood and
// the time when it started and when it ended.
type window struct {
	accessLog, kind, check string
	from, to               int64
	start, end             time.Time
}

// windows are a setup's checks, for attributing its token requests.
type windows struct {
	mu  sync.Mutex
	all []*window
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// open starts kind's check; close ends it.
func (ws *windows) open(t testing.TB, accessLog, kind, check string) *window {
	t.Helper()
	return &window{accessLog: accessLog, kind: kind, check: check, from: fileSize(t, accessLog), start: time.Now()}
}

func (ws *windows) close(t testing.TB, w *window) {
	t.Helper()
	w.to, w.end = fileSize(t, w.accessLog), time.Now()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.all = append(ws.all, w)
}

// attribute records in res, under setup, the flavours of the token
// requests of every window, from the nginx access logs and the audit log.
func (ws *windows) attribute(t testing.TB, res *results, setup, audit string) {
	t.Helper()
	auditLog, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string][]byte{}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.all {
		if logs[w.accessLog] == nil {
			if logs[w.accessLog], err = os.ReadFile(w.accessLog); err != nil {
				t.Fatal(err)
			}
		}
		b := logs[w.accessLog]
		f := nginxFlavours(b[min(w.from, int64(len(b))):min(w.to, int64(len(b)))], w.kind) | auditFlavours(auditLog, w)
		if f != 0 {
			res.addFlavour(setup, w.kind, w.check, f)
		}
	}
}

// accessLine is a line of log_format regctl_main: the Basic user, the
// method and the request target.
var accessLine = regexp.MustCompile(`^\S+ - (\S+) \[[^\]]*\] "(\S+) (\S+) [^"]*"`)

// nginxFlavours are the flavours of kind's token GETs in lines of nginx's
// access log.
func nginxFlavours(lines []byte, kind string) flavour {
	var f flavour
	sc := bufio.NewScanner(bytes.NewReader(lines))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil || m[2] != "GET" || !strings.HasPrefix(m[3], "/auth/token") {
			continue
		}
		u, err := url.Parse(m[3])
		if err != nil {
			continue
		}
		q := u.Query()
		user := m[1]
		switch {
		case user == "-":
			for _, k := range scopeKinds(q["scope"]) {
				if k == kind {
					f |= flavourAnonymous
					break
				}
			}
		case userKind(user) != kind:
		case q.Get("account") != "":
			f |= flavourAccount
		default:
			f |= flavourBasic
		}
	}
	return f
}

// auditRecord is what the flavours need of a line of regctl serve's
// audit log (token.AuditRecord).
type auditRecord struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user"`
	UserAgent string    `json:"user_agent"`
	Grant     string    `json:"grant"`
}

// auditFlavours are the flavours of the token POSTs of w's client
// decided within w, from the audit log; the harness's own are left out.
func auditFlavours(audit []byte, w *window) flavour {
	var f flavour
	sc := bufio.NewScanner(bytes.NewReader(audit))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var rec auditRecord
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.UserAgent == harnessUA || userKind(rec.User) != w.kind ||
			rec.Time.Before(w.start) || rec.Time.After(w.end) {
			continue
		}
		switch rec.Grant {
		case "password":
			f |= flavourPassword
		case "refresh_token":
			f |= flavourRefresh
		}
	}
	return f
}

// TestFlavours: token requests are told apart by method, Basic user,
// account= and grant, and given to the right client and check.
func TestFlavours(t *testing.T) {
	access := []byte(strings.Join([]string{
		`127.0.0.1 - - [06/Dec/2026:13:00:00 +0000] "GET /auth/token?scope=repository%3Ainterop%2Fregclient%2Fapp%3Apull&service=localhost HTTP/1.1" 401 0 "-" "regclient" rt=0.001`,
		`127.0.0.1 - rw-regclient [06/Dec/2026:13:00:00 +0000] "GET /auth/token?account=rw-regclient&scope=repository%3Ainterop%2Fregclient%2Fapp%3Apull&service=localhost HTTP/1.1" 200 900 "-" "regclient" rt=0.05`,
		`127.0.0.1 - rw-crane [06/Dec/2026:13:00:00 +0000] "GET /auth/token?scope=repository%3Ainterop%2Fcrane%2Fapp%3Apull&service=localhost HTTP/1.1" 200 900 "-" "crane" rt=0.05`,
		`127.0.0.1 - rw-docker-containerd [06/Dec/2026:13:00:00 +0000] "GET /auth/token?account=rw-docker-containerd&service=localhost HTTP/1.1" 200 900 "-" "docker" rt=0.05`,
		`127.0.0.1 - - [06/Dec/2026:13:00:00 +0000] "POST /auth/token HTTP/1.1" 200 900 "-" "containerd" rt=0.05`,
		`127.0.0.1 - rw-crane [06/Dec/2026:13:00:00 +0000] "HEAD /v2/interop/crane/app/manifests/1 HTTP/1.1" 200 0 "-" "crane" rt=0.01`,
	}, "\n") + "\n")
	for _, tt := range []struct {
		kind string
		want flavour
	}{
		{"regclient", flavourAnonymous | flavourAccount},
		{"crane", flavourBasic},
		{"docker", 0},
		{"docker-containerd", flavourAccount},
		{"ctr", 0},
	} {
		if got := nginxFlavours(access, tt.kind); got != tt.want {
			t.Errorf("nginx, %s: %q, want %q", tt.kind, got, tt.want)
		}
	}

	t0 := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	audit := []byte(strings.Join([]string{
		`{"time":"2026-12-06T13:00:01Z","user":"rw-ctr","user_agent":"containerd/1.6.20","grant":"password","service":"localhost","status":200}`,
		`{"time":"2026-12-06T13:00:02Z","user":"refresh-x-ctr","user_agent":"` + harnessUA + `","grant":"password","status":200}`,
		`{"time":"2026-12-06T13:00:03Z","user":"refresh-x-ctr","user_agent":"containerd/1.6.20","grant":"refresh_token","status":200}`,
		`{"time":"2026-12-06T13:00:03Z","user":"rw-ctr","user_agent":"containerd/1.6.20","grant":"basic","status":200}`,
		`{"time":"2026-12-06T13:00:09Z","user":"rw-ctr","user_agent":"containerd/1.6.20","grant":"password","status":200}`,
	}, "\n") + "\n")
	for _, tt := range []struct {
		kind       string
		start, end int // seconds after t0
		want       flavour
	}{
		{"ctr", 0, 5, flavourPassword | flavourRefresh},
		{"ctr", 2, 5, flavourRefresh},
		{"ctr", 5, 8, 0},
		{"crane", 0, 10, 0},
	} {
		w := &window{kind: tt.kind, start: t0.Add(time.Duration(tt.start) * time.Second), end: t0.Add(time.Duration(tt.end) * time.Second)}
		if got := auditFlavours(audit, w); got != tt.want {
			t.Errorf("audit, %s %d-%ds: %q, want %q", tt.kind, tt.start, tt.end, got, tt.want)
		}
	}
	if got := (flavourAnonymous | flavourAccount | flavourRefresh).String(); got != "N,A,R" {
		t.Errorf("String: %q, want N,A,R", got)
	}
}
