package serve

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type countingWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *countingWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *countingWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBufferedLog: INFO lines are batched and written within the flush
// interval; a WARN line goes out at once, after the lines before it.
func TestBufferedLog(t *testing.T) {
	out := &countingWriter{}
	buf := newBufferedLog(out)
	log := slog.New(flushingHandler{slog.NewTextHandler(buf, nil), buf}).With("component", "test")
	for i := range 100 {
		log.Info("token issued", "n", i)
	}
	if s := out.String(); s != "" {
		t.Fatalf("INFO lines written at once: %q", s)
	}
	log.Warn("authentication failed", "user", "bob")
	s := out.String()
	if n := strings.Count(s, "\n"); n != 101 || !strings.HasSuffix(s, "user=bob\n") || !strings.Contains(s, "component=test") {
		t.Fatalf("after a WARN line: %d lines, want 101 ending with it:\n%s", n, s)
	}
	if out.writes != 1 {
		t.Errorf("%d writes for 101 lines, want 1", out.writes)
	}
	log.Info("token issued", "n", 100)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "n=100"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a buffered INFO line was never written")
		}
	}
	log.Info("last")
	if err := buf.Flush(); err != nil || !strings.HasSuffix(out.String(), "msg=last component=test\n") {
		t.Errorf("Flush: %v; output ends %q", err, out.String()[max(0, len(out.String())-40):])
	}
}
