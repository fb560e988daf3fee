package interop

// The results of the matrix and the token flavours each client used. This
// file and readme_test.go carry no build tag: their unit tests run in
// `go test ./...` without the servers.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
)

// flavour is a set of the ways a client asked regctl serve for a token.
type flavour uint8

// The token flavours, as nginx's access log (GET) and regctl serve's
// audit log (POST, its grant field) show them.
const (
	flavourAnonymous flavour = 1 << iota // N: GET without credentials
	flavourBasic                         // B: GET with Basic auth
	flavourAccount                       // A: GET with Basic auth and account=
	flavourPassword                      // P: POST grant_type=password
	flavourRefresh                       // R: POST grant_type=refresh_token
)

var flavourLetters = []struct {
	f      flavour
	letter string
}{
	{flavourAnonymous, "N"}, {flavourBasic, "B"}, {flavourAccount, "A"}, {flavourPassword, "P"}, {flavourRefresh, "R"},
}

// String is the set's letters in a fixed order, joined by commas ("N,A").
func (f flavour) String() string {
	var out []string
	for _, l := range flavourLetters {
		if f&l.f != 0 {
			out = append(out, l.letter)
		}
	}
	return strings.Join(out, ",")
}

// results is the matrix: setup → client → check → result (ok, FAIL,
// skip or "skip: why"), and the flavours of the token requests each check
// made. A whole setup skipped is client "*", check "*"; a whole pair is
// check "*".
type results struct {
	mu  sync.Mutex
	m   map[string]map[string]map[string]string
	fla map[string]map[string]map[string]flavour
}

func newResults() *results {
	return &results{m: map[string]map[string]map[string]string{}, fla: map[string]map[string]map[string]flavour{}}
}

// cell returns the map of setup and client in m, creating it.
func cell[V any](m map[string]map[string]map[string]V, setup, kind string) map[string]V {
	if m[setup] == nil {
		m[setup] = map[string]map[string]V{}
	}
	if m[setup][kind] == nil {
		m[setup][kind] = map[string]V{}
	}
	return m[setup][kind]
}

func (r *results) set(setup, kind, check, res string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cell(r.m, setup, kind)[check] = res
}

// addFlavour records that check of kind on setup asked for tokens as f.
func (r *results) addFlavour(setup, kind, check string, f flavour) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cell(r.fla, setup, kind)[check] |= f
}

// skipRow records a whole setup skipped, skipCol a whole pair.
func (r *results) skipRow(setup, why string) { r.set(setup, "*", "*", "skip: "+why) }

func (r *results) skipCol(setup, kind, why string) { r.set(setup, kind, "*", "skip: "+why) }

// get is the result of one check ("" if it did not run) and its
// flavours; callers hold mu.
func (r *results) get(setup, kind, check string) (string, flavour) {
	if why := r.m[setup]["*"]["*"]; why != "" {
		return why, 0
	}
	if why := r.m[setup][kind]["*"]; why != "" {
		return why, 0
	}
	return r.m[setup][kind][check], r.fla[setup][kind][check]
}

// resultOf is a finished subtest's cell: ok, FAIL or skip.
func resultOf(t *testing.T) string {
	switch {
	case t.Failed():
		return "FAIL"
	case t.Skipped():
		return "skip"
	}
	return "ok"
}

// group is one table of the report: a setup and its checks.
type group struct {
	setup  string
	checks []string
}

// table renders the matrix as Markdown, one table per setup, with a
// client per row and a check per column; a cell is the result and the
// token flavours the check's requests had ("ok N,A").
func (r *results) table(groups []group, kinds []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "%s:\n", g.setup)
		if why := r.m[g.setup]["*"]["*"]; why != "" {
			fmt.Fprintf(&b, "  %s\n\n", why)
			continue
		}
		for _, check := range slices.Sorted(maps.Keys(r.m[g.setup]["(HTTP)"])) {
			fmt.Fprintf(&b, "  %s (HTTP): %s\n", check, r.m[g.setup]["(HTTP)"][check])
		}
		fmt.Fprintf(&b, "  | client | %s |\n  |---|%s\n", strings.Join(g.checks, " | "), strings.Repeat("---|", len(g.checks)))
		for _, kind := range kinds {
			if why := r.m[g.setup][kind]["*"]; why != "" {
				fmt.Fprintf(&b, "  | %s | %s |\n", kind, why)
				continue
			}
			var out []string
			for _, c := range g.checks {
				res, f := r.get(g.setup, kind, c)
				if res == "" {
					res = "-"
				}
				out = append(out, strings.TrimSpace(res+" "+f.String()))
			}
			fmt.Fprintf(&b, "  | %s | %s |\n", kind, strings.Join(out, " | "))
		}
		b.WriteString("\n")
	}
	b.WriteString(flavourLegend + "\n")
	return b.String()
}

// flavourLegend explains the letters of the report and the README table.
const flavourLegend = "Token requests: N = GET without credentials, B = GET with Basic auth, " +
	"A = GET with Basic auth and account=, P = POST grant_type=password, R = POST grant_type=refresh_token."

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// claims returns the access claim of the JWT tok, as JSON text.
func claims(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Access json.RawMessage `json:"access"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return string(c.Access)
}
