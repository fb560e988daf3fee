//go:build integration

package render_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render/rendertest"
)

// TestTokenReplicasStoreOutage: token.replicas as rendered, with real
// nginx in front of replicas that all answer 503 with Retry-After, as
// they do while the store is down: every token GET gets that 503, not
// nginx's 502 "no live upstreams" once it has left each replica out
// (the rendered backup servers), and a replica that can still answer (a
// cached login) is asked.
//
//	go test -tags integration -run TestTokenReplicasStoreOutage ./internal/render
func TestTokenReplicasStoreOutage(t *testing.T) {
	nginx := rendertest.NginxBinary(t)
	c := config.Defaults()
	c.Domains.Registry = "localhost"
	c.Token.Replicas = 2
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var upstreams []string
	for range 2 {
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		}))
		t.Cleanup(down.Close)
		upstreams = append(upstreams, down.Listener.Addr().String())
	}
	site := rendertest.NewSite(t, &c, "127.0.0.1:1", upstreams, nil)
	site.Start(t, nginx)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: site.Roots, ServerName: "localhost"},
	}}
	tokenURL := fmt.Sprintf("https://127.0.0.1:%d/auth/token?service=%s", site.HTTPS, c.TokenService())
	statuses := map[int]int{}
	for range 30 {
		req, _ := http.NewRequest(http.MethodGet, tokenURL, nil)
		req.Host = "localhost"
		req.SetBasicAuth("ci", "pw")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("a 503 without the replicas' Retry-After")
		}
	}
	if statuses[http.StatusServiceUnavailable] != 30 {
		t.Errorf("token GETs with every replica answering 503: statuses %v, want 30 × 503", statuses)
	}
}
