package cli

import (
	"os"
	"strings"
	"testing"
)

// TestREADMETranscript checks that the README shows the administration
// transcript exactly as the tool prints it (testdata/readme.golden, kept
// true by TestREADME), so the README's examples cannot drift.
func TestREADMETranscript(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/readme.golden")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- transcript: internal/cli/testdata/readme.golden -->\n```console\n"
	_, rest, ok := strings.Cut(string(readme), marker)
	if !ok {
		t.Fatal("README.md lacks the transcript marker")
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatal("README.md transcript block is not closed")
	}
	want := strings.TrimRight(strings.ReplaceAll(string(golden), "stderr: ", ""), "\n")
	if block != want {
		t.Errorf("README.md transcript differs from testdata/readme.golden (without the stderr: prefixes):\n%s", diffLines(want, block))
	}
}
