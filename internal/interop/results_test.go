//go:build integration

package interop

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regctl/regctl/internal/testenv/clients"
)

// results is the matrix: registry → client → check → result.
type results struct {
	mu sync.Mutex
	m  map[string]map[string]map[string]string
}

func newResults() *results { return &results{m: map[string]map[string]map[string]string{}} }

func (r *results) set(reg, kind, check, res string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[reg] == nil {
		r.m[reg] = map[string]map[string]string{}
	}
	if r.m[reg][kind] == nil {
		r.m[reg][kind] = map[string]string{}
	}
	r.m[reg][kind][check] = res
}

// skipRow records a whole registry skipped, skipCol a whole pair.
func (r *results) skipRow(reg, why string) { r.set(reg, "*", "*", "skip: "+why) }

func (r *results) skipCol(reg, kind, why string) { r.set(reg, kind, "*", "skip: "+why) }

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

// table renders the matrix as Markdown, one table per registry, with a
// client per row and a check per column.
func (r *results) table() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, reg := range registries {
		row := r.m[reg.name]
		fmt.Fprintf(&b, "%s:\n", reg.name)
		if why := row["*"]["*"]; why != "" {
			fmt.Fprintf(&b, "  %s\n\n", why)
			continue
		}
		if res := row["(HTTP)"]["no-from-grant"]; res != "" {
			fmt.Fprintf(&b, "  no-from-grant (HTTP): %s\n", res)
		}
		fmt.Fprintf(&b, "  | client | %s |\n  |---|%s\n", strings.Join(checks, " | "), strings.Repeat("---|", len(checks)))
		kinds := append(slices.Clone(clients.AllKinds), dockerContainerd)
		for _, kind := range kinds {
			cells := row[kind]
			if why := cells["*"]; why != "" {
				fmt.Fprintf(&b, "  | %s | %s |\n", kind, why)
				continue
			}
			var out []string
			for _, c := range checks {
				v := cells[c]
				if v == "" {
					v = "-"
				}
				out = append(out, v)
			}
			fmt.Fprintf(&b, "  | %s | %s |\n", kind, strings.Join(out, " | "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

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
