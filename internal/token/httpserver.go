package token

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// NewHTTPServer is the HTTP server the token endpoint runs in: token
// requests are small and quick, so slow or oversized ones are cut off
// (a client that trickles its headers or body holds a connection for at
// most these timeouts). writeTimeout bounds a response; the metrics
// listener, scraped less often and answering more, takes a longer one.
func NewHTTPServer(h http.Handler, writeTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// ServeUntil serves hs on ln until ctx ends, then shuts it down, letting
// requests in flight finish within grace. It returns the error that
// stopped serving early, if any.
func ServeUntil(ctx context.Context, hs *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
