package cmdtest

import (
	"os"
	"strings"
	"testing"

	"github.com/regctl/regctl/templates"
)

// WriteFile writes data to p, keeping the mode of an existing file (0600
// for a new one).
func WriteFile(t *testing.T, p, data string) {
	t.Helper()
	fi, err := os.Stat(p)
	mode := os.FileMode(0o600)
	if err == nil {
		mode = fi.Mode().Perm()
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// ValidRegctlYAML is the shipped example with the registry at
// registry.test.
func ValidRegctlYAML() string {
	s := strings.Replace(string(templates.Example), "registry: registry.example.com", "registry: registry.test", 1)
	return s
}
