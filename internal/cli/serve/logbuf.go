package serve

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logFlushInterval bounds how long a buffered log line waits.
const logFlushInterval = 100 * time.Millisecond

// bufferedLog is regctl serve's log sink. A busy token server logs one line
// per token; written one write(2) each, they are a sizeable share of the
// CPU a token costs (docs/performance.md). Lines below WARN are therefore
// buffered and written within logFlushInterval. A WARN or ERROR line (a
// failed login, which fail2ban may read, a store outage) is written at
// once with every line before it, so the order holds. A crash loses at
// most the last logFlushInterval of INFO lines; a normal exit loses none.
type bufferedLog struct {
	mu    sync.Mutex
	out   io.Writer
	w     *bufio.Writer
	timer *time.Timer // the pending flush, nil when the buffer is empty
}

func newBufferedLog(out io.Writer) *bufferedLog {
	return &bufferedLog{out: out, w: bufio.NewWriterSize(out, 64<<10)}
}

// Write buffers p (one log line: slog handlers write each record once).
func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.w.Write(p)
	if err != nil {
		b.w.Reset(b.out) // a bufio.Writer keeps its first error: start afresh
	}
	if b.timer == nil && b.w.Buffered() > 0 {
		b.timer = time.AfterFunc(logFlushInterval, func() { _ = b.Flush() })
	}
	return n, err
}

// Flush writes the buffered lines.
func (b *bufferedLog) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	err := b.w.Flush()
	if err != nil {
		b.w.Reset(b.out)
	}
	return err
}

// flushingHandler flushes the buffered log after every record at WARN or
// above.
type flushingHandler struct {
	slog.Handler
	buf *bufferedLog
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.buf.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(attrs), h.buf}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.buf}
}
