package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	date := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, dir := range dirs {
		if err := generate(newRoot(), dir, date); err != nil {
			t.Fatal(err)
		}
	}
	dir := dirs[0]

	root := manPage(t, filepath.Join(dir, "man1", "regctl.1.gz"))
	// The page's source is the version --version prints: make's stamp,
	// or what the build info says (go test: "(devel)").
	header := `.TH "REGCTL" "1" "Dec 2026" "regctl ` + newRoot().Version + `" "regctl manual"`
	for _, want := range []string{header, `\fB--version\fP`, `\fBregctl-user(1)\fP`} {
		if !strings.Contains(root, want) {
			t.Errorf("regctl.1 lacks %q:\n%s", want, root)
		}
	}
	if page := manPage(t, filepath.Join(dir, "man1", "regctl-user-add.1.gz")); !strings.Contains(page, "regctl user add") {
		t.Errorf("regctl-user-add.1 does not name its command:\n%s", page)
	}
	if _, err := os.Stat(filepath.Join(dir, "man1", "regctl-healthcheck.1.gz")); err == nil {
		t.Error("the hidden healthcheck command has a man page")
	}
	for name, want := range map[string]string{
		"regctl.bash": "__start_regctl",
		"_regctl":     "#compdef regctl",
		"regctl.fish": "complete -c regctl",
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q", name, want)
		}
	}

	// Same tree, same date: the same bytes (reproducible packages).
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(dir, "*regctl*"))
	for _, f := range append(files, more...) {
		rel, _ := filepath.Rel(dir, f)
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(dirs[1], rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs (%v)", rel, err)
		}
	}
}

func TestSourceDate(t *testing.T) {
	got, err := sourceDate("1796551200")
	if err != nil || !got.Equal(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("sourceDate: %v, %v", got, err)
	}
	if _, err := sourceDate("yesterday"); err == nil {
		t.Error("sourceDate accepted yesterday")
	}
}

func manPage(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("%s: gzip header has name %q, time %v (want neither, like gzip -n)", path, zr.Name, zr.ModTime)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
