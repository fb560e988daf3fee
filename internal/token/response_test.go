package token

import (
	"strconv"
	"testing"
)

// Responses carry a Content-Length, so that a token (about 4 KB with the
// x5c chain) is not sent chunked.
func TestResponseContentLength(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name       string
		user, pass string
		status     int
	}{
		{"token", "waldi", "waldi-secret", 200},
		{"error", "waldi", "wrong", 401},
	} {
		rec := f.get(tt.user, tt.pass, scopes("repository:test/app:pull"))
		if rec.Code != tt.status {
			t.Fatalf("%s: status %d, want %d", tt.name, rec.Code, tt.status)
		}
		if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
			t.Errorf("%s: Content-Length %q, body %s bytes", tt.name, got, want)
		}
	}
}
