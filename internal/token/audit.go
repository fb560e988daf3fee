package token

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regctl/regctl/internal/acl"
)

// AuditRecord is one line of the audit log: one token decision. It never
// holds a password, token or Authorization header. Its keys are a stable
// interface (regctl audit tail reads them).
type AuditRecord struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user"` // "" when anonymous or unparsed
	ClientIP  string    `json:"client_ip"`
	UserAgent string    `json:"user_agent,omitempty"`
	Grant     string    `json:"grant"`
	Service   string    `json:"service"`
	Requested []string  `json:"requested"`
	Granted   []string  `json:"granted"`
	// DecidedBy says, for each requested scope of an issued token, which
	// rule and grants decided it.
	DecidedBy []DecidedBy `json:"decided_by,omitempty"`
	// Result is the regctl_token_requests_total result: issued,
	// bad_request, unauthorized, credentials_required, rate_limited,
	// unavailable or error.
	Result string `json:"result"`
	Status int    `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// DecidedBy is what decided one requested scope: the seq of the first
// matching rule (absent when none matched) and the patterns of the
// user's matching grants.
type DecidedBy struct {
	Scope  string   `json:"scope"`
	Rule   *int64   `json:"rule,omitempty"`
	Grants []string `json:"grants,omitempty"`
}

const (
	auditQueue     = 8192
	auditMaxWait   = 100 * time.Millisecond // a request waits at most this for a full queue
	auditMaxUA     = 256
	auditWarnEvery = time.Minute
)

// AuditLog writes AuditRecords as JSON lines from a goroutine of its own,
// through a buffer flushed whenever the queue runs empty. A request only
// queues its decision (deciding rules are looked up by the writer); if the
// queue is full it waits at most auditMaxWait, then the line is dropped and
// counted (regctl_audit_dropped_total), so a stuck disk never stalls token
// requests.
type AuditLog struct {
	ch       chan auditEntry
	maxWait  time.Duration // auditMaxWait; tests shorten it
	out      io.Writer
	file     *os.File // nil for a writer given by the caller
	log      *slog.Logger
	dropped  atomic.Uint64
	lastWarn atomic.Int64
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// auditEntry is a decision as the request left it; the writer formats it.
type auditEntry struct {
	now       time.Time
	user      string
	ip        netip.Addr
	ua        string
	grant     grant
	service   string
	requested []acl.Scope
	granted   []acl.Scope
	status    int
	reason    string
	noCreds   bool          // decision.noCredentials
	decided   []acl.Decider // for an issued token, per requested scope
}

// OpenAuditLog appends to the file at path (created 0600: it names users
// and addresses), or writes to stdout for "-".
func OpenAuditLog(path string, log *slog.Logger) (*AuditLog, error) {
	if path == "-" {
		return NewAuditLog(os.Stdout, log), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a := NewAuditLog(f, log)
	a.file = f
	return a, nil
}

// NewAuditLog writes to w until Close.
func NewAuditLog(w io.Writer, log *slog.Logger) *AuditLog {
	a := &AuditLog{
		ch:      make(chan auditEntry, auditQueue),
		maxWait: auditMaxWait,
		out:     w,
		log:     log,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go a.run()
	return a
}

// SetAudit makes the server write one line per token request to a; call it
// before serving.
func (s *Server) SetAudit(a *AuditLog) { s.audit = a }

// Dropped is how many lines were lost.
func (a *AuditLog) Dropped() uint64 { return a.dropped.Load() }

// record queues one decision.
func (a *AuditLog) record(r *http.Request, d *decision) {
	ua := r.UserAgent()
	if len(ua) > auditMaxUA {
		ua = ua[:auditMaxUA]
	}
	e := auditEntry{
		now: d.now, user: d.user, ip: d.ip, ua: ua, grant: d.grant, service: d.service,
		requested: d.requested, granted: d.granted, status: d.status, reason: d.reason,
		noCreds: d.noCredentials,
	}
	if d.status == http.StatusOK {
		e.decided = d.decided
	}
	select {
	case a.ch <- e:
		return
	default:
	}
	t := time.NewTimer(a.maxWait)
	defer t.Stop()
	select {
	case a.ch <- e:
	case <-t.C:
		a.drop(1, "the audit log writer is behind; lines are being dropped", nil)
	}
}

// drop counts lost lines and warns at most once a minute.
func (a *AuditLog) drop(n int, msg string, err error) {
	a.dropped.Add(uint64(n))
	now := time.Now().UnixNano()
	last := a.lastWarn.Load()
	if now-last < int64(auditWarnEvery) || !a.lastWarn.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"dropped_total", a.dropped.Load()}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	a.log.Error(msg, attrs...)
}

func (a *AuditLog) run() {
	defer close(a.done)
	bw := bufio.NewWriterSize(a.out, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	pending := 0
	flush := func() {
		if err := bw.Flush(); err != nil {
			a.drop(pending, "cannot write the audit log; lines are being dropped", err)
			bw.Reset(a.out) // a bufio.Writer keeps its first error: start afresh
		}
		pending = 0
	}
	write := func(e auditEntry) {
		if err := enc.Encode(e.record()); err != nil {
			a.drop(1, "cannot write the audit log; lines are being dropped", err)
			bw.Reset(a.out)
			return
		}
		pending++
	}
	for {
		select {
		case e := <-a.ch:
			write(e)
			if len(a.ch) == 0 {
				flush()
			}
		case <-a.stop:
			for {
				select {
				case e := <-a.ch:
					write(e)
				default:
					flush()
					return
				}
			}
		}
	}
}

// Close writes what is queued and stops the writer; lines recorded later
// are not written. It closes the file OpenAuditLog opened.
func (a *AuditLog) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	if a.file != nil {
		return a.file.Close()
	}
	return nil
}

func scopeStrings(sc []acl.Scope) []string {
	out := make([]string, len(sc))
	for i, s := range sc {
		out[i] = s.String()
	}
	return out
}

// record formats the entry; for an issued token it looks up what decided
// each requested scope.
func (e auditEntry) record() AuditRecord {
	rec := AuditRecord{
		Time:      e.now.UTC(),
		User:      e.user,
		Grant:     string(e.grant),
		Service:   e.service,
		UserAgent: e.ua,
		Requested: scopeStrings(e.requested),
		Granted:   scopeStrings(e.granted),
		Result:    resultNames[resultIndex(e.status, e.noCreds)],
		Status:    e.status,
		Reason:    e.reason,
	}
	if e.ip.IsValid() {
		rec.ClientIP = e.ip.String()
	}
	if e.grant == "" {
		rec.Grant = "unknown"
	}
	if e.status != http.StatusOK || len(e.decided) != len(e.requested) {
		return rec
	}
	rec.DecidedBy = make([]DecidedBy, len(e.requested))
	for i, sc := range e.requested {
		db := e.decided[i]
		rec.DecidedBy[i] = DecidedBy{Scope: sc.Type + ":" + sc.Name, Grants: db.Grants}
		if db.HasRule {
			seq := db.Rule
			rec.DecidedBy[i].Rule = &seq
		}
	}
	return rec
}
