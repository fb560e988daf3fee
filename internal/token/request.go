package token

import (
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/netip"
	"strings"

	"github.com/regctl/regctl/internal/acl"
)

// grant is how a token request authenticates.
type grant string

const (
	grantBasic     grant = "basic"    // GET with HTTP Basic
	grantAnonymous grant = "none"     // GET without credentials
	grantPassword  grant = "password" // POST grant_type=password
	grantRefresh   grant = "refresh_token"
)

// tokenRequest is a parsed GET or POST token request.
type tokenRequest struct {
	grant        grant
	username     string
	password     string
	refreshToken string
	service      string
	account      string
	clientID     string
	offline      bool
	scopes       []acl.Scope
}

// requestError is a malformed request: 400 with an RFC 6749 error code.
type requestError struct {
	code string // invalid_request, unsupported_grant_type
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{code: "invalid_request", msg: fmt.Sprintf(format, args...)}
}

const (
	maxFormBytes  = 64 << 10
	maxFieldBytes = 4096
)

// parseBasicAuth parses an Authorization header value. ok is false when the
// header is absent or not Basic; err is set when it is Basic but malformed.
func parseBasicAuth(h string) (user, pass string, ok bool, err error) {
	if h == "" {
		return "", "", false, nil
	}
	scheme, cred, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false, badRequest("unsupported Authorization scheme %q (use Basic)", truncate(scheme, 20))
	}
	cred = strings.TrimSpace(cred)
	if len(cred) > 2*maxFieldBytes {
		return "", "", false, badRequest("Authorization header too long")
	}
	raw, derr := base64.StdEncoding.DecodeString(cred)
	if derr != nil {
		return "", "", false, badRequest("malformed Basic credentials: not base64")
	}
	user, pass, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false, badRequest("malformed Basic credentials: missing ':'")
	}
	if user == "" {
		return "", "", false, badRequest("malformed Basic credentials: empty username")
	}
	return user, pass, true, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// single returns the only value of a parameter, rejecting repeats.
func single(v map[string][]string, key string) (string, error) {
	vals := v[key]
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", badRequest("parameter %q given %d times", key, len(vals))
	case len(vals[0]) > maxFieldBytes:
		return "", badRequest("parameter %q too long", key)
	}
	return vals[0], nil
}

// parseRequest reads a token request: GET (Basic auth, query parameters) or
// POST (OAuth2 form). It never trusts sizes: the body is capped.
func parseRequest(w http.ResponseWriter, r *http.Request) (*tokenRequest, error) {
	switch r.Method {
	case http.MethodGet:
		return parseGet(r)
	case http.MethodPost:
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/x-www-form-urlencoded" {
			return nil, badRequest("POST body must be application/x-www-form-urlencoded")
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, badRequest("request body larger than %d bytes", maxFormBytes)
			}
			return nil, badRequest("malformed form body")
		}
		return parseForm(r.PostForm)
	}
	return nil, errMethod
}

var errMethod = errors.New("method not allowed")

func parseGet(r *http.Request) (*tokenRequest, error) {
	q := r.URL.Query()
	req := &tokenRequest{grant: grantAnonymous}
	user, pass, ok, err := parseBasicAuth(r.Header.Get("Authorization"))
	if err != nil {
		return nil, err
	}
	if ok {
		req.grant, req.username, req.password = grantBasic, user, pass
	}
	if err := req.common(q); err != nil {
		return nil, err
	}
	offline, err := single(q, "offline_token")
	if err != nil {
		return nil, err
	}
	req.offline = offline == "true" || offline == "1"
	return req, nil
}

func parseForm(f map[string][]string) (*tokenRequest, error) {
	req := &tokenRequest{}
	gt, err := single(f, "grant_type")
	if err != nil {
		return nil, err
	}
	switch grant(gt) {
	case grantPassword:
		req.grant = grantPassword
		if req.username, err = single(f, "username"); err != nil {
			return nil, err
		}
		if req.password, err = single(f, "password"); err != nil {
			return nil, err
		}
		if req.username == "" {
			return nil, badRequest("grant_type=password needs username")
		}
	case grantRefresh:
		req.grant = grantRefresh
		if req.refreshToken, err = single(f, "refresh_token"); err != nil {
			return nil, err
		}
		if req.refreshToken == "" {
			return nil, badRequest("grant_type=refresh_token needs refresh_token")
		}
	case "":
		return nil, badRequest("missing grant_type (password or refresh_token)")
	default:
		return nil, &requestError{code: "unsupported_grant_type", msg: fmt.Sprintf("unsupported grant_type %q (use password or refresh_token)", truncate(gt, 40))}
	}
	if err := req.common(f); err != nil {
		return nil, err
	}
	at, err := single(f, "access_type")
	if err != nil {
		return nil, err
	}
	req.offline = at == "offline"
	return req, nil
}

// common reads the parameters GET and POST share.
func (req *tokenRequest) common(v map[string][]string) error {
	var err error
	if req.service, err = single(v, "service"); err != nil {
		return err
	}
	if req.account, err = single(v, "account"); err != nil {
		return err
	}
	if req.clientID, err = single(v, "client_id"); err != nil {
		return err
	}
	if req.scopes, err = acl.ParseScopes(v["scope"]); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

// clientIP is the peer address, or, when the peer is a trusted proxy, the
// right-most address in X-Forwarded-For that is not itself a trusted proxy
// (falling back to X-Real-IP).
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !contains(trusted, addr) {
		return addr
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr // a malformed hop: trust nothing beyond it
			}
			a = a.Unmap()
			if !contains(trusted, a) {
				return a
			}
		}
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); err == nil {
		return a.Unmap()
	}
	return addr
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
