package bench

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/token"
)

// floorResponse has the fields of regctl's token response.
type floorResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// floorAccess is the floor's fixed grant: the size of a typical one.
var floorAccess = []acl.Scope{{Type: acl.TypeRepository, Name: UserName(0) + "/app", Actions: []string{"pull", "push"}}}

// NewFloor returns the benchmark's physical reference: a handler that
// answers every request, whatever its method, path or credentials, with
// an ES256 token of fixed claims signed by regctl's own token.Minter with
// the keys in ks, in the shape of regctl's token response. It does nothing
// else: no parsing, no authentication, no rules, no logging. What regctl
// serve spends beyond it is the cost of deciding.
func NewFloor(ks *keys.Set, now func() time.Time) (http.Handler, error) {
	m, err := token.NewMinter(ks, Issuer, 5*time.Minute, config.KeyFormatX5C)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t := now()
		tok, _, err := m.Mint(UserName(0), Service, floorAccess, t)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body, err := json.Marshal(floorResponse{
			Token:       tok,
			AccessToken: tok,
			ExpiresIn:   int(m.Lifetime() / time.Second),
			IssuedAt:    t.UTC().Format(time.RFC3339),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body = append(body, '\n')
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}), nil
}

// ServeFloor serves the floor on addr (HOST:PORT) until ctx ends, with
// the HTTP server settings of regctl serve.
func ServeFloor(ctx context.Context, addr string, keysDir string) error {
	ks, err := keys.Load(keysDir, time.Now())
	if err != nil {
		return err
	}
	h, err := NewFloor(ks, time.Now)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return token.ServeUntil(ctx, token.NewHTTPServer(mux, 15*time.Second), ln, 5*time.Second)
}
