package cli

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestArchitecturePackageMap keeps docs/architecture.md's package map true:
// every package of the module has a row, and each row's imports column
// lists exactly the module's packages it imports, with the integration
// build tag (test files count for packages that have only tests; a row
// without the column imports none).
func TestArchitecturePackageMap(t *testing.T) {
	const module = "github.com/regctl/regctl/"
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}

	// The rows: | `name` … | owns | `imp`, `imp` |  ("\|" is a literal |).
	name := regexp.MustCompile("^`([^`]+)`")
	quoted := regexp.MustCompile("`([^`]+)`")
	documented := map[string][]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.ReplaceAll(line, `\|`, "")
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		// Leaf packages are in a table without an imports column.
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) == 2 {
			cells = append(cells, "")
		}
		if len(cells) != 3 {
			t.Errorf("docs/architecture.md: a row with %d cells, want 2 or 3: %s", len(cells), line)
			continue
		}
		m := name.FindStringSubmatch(strings.TrimSpace(cells[0]))
		if m == nil {
			continue
		}
		var imports []string
		for _, q := range quoted.FindAllStringSubmatch(cells[2], -1) {
			imports = append(imports, q[1])
		}
		slices.Sort(imports)
		documented[m[1]] = imports
	}

	// The packages, named as the map names them: cmd/X, templates, and
	// the rest relative to internal/.
	short := func(path string) string {
		rel := strings.TrimPrefix(path, module)
		return strings.TrimPrefix(rel, "internal/")
	}
	actual := map[string][]string{}
	err = filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if base := d.Name(); dir != root && (strings.HasPrefix(base, ".") || base == "testdata" || base == "bin" || base == "dist") {
			return filepath.SkipDir
		}
		ctx := build.Default
		ctx.BuildTags = []string{"integration"}
		pkg, err := ctx.ImportDir(dir, 0)
		if err != nil {
			return nil // no Go files here
		}
		imports := pkg.Imports
		if len(pkg.GoFiles) == 0 {
			imports = append(slices.Clone(pkg.TestImports), pkg.XTestImports...)
		}
		rel, _ := filepath.Rel(root, dir)
		self := module + filepath.ToSlash(rel)
		set := map[string]bool{}
		for _, imp := range imports {
			if strings.HasPrefix(imp, module) && imp != self {
				set[short(imp)] = true
			}
		}
		var list []string
		for imp := range set {
			list = append(list, imp)
		}
		slices.Sort(list)
		actual[short(self)] = list
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for pkg, imports := range actual {
		doc, ok := documented[pkg]
		switch {
		case !ok:
			t.Errorf("docs/architecture.md has no row for %s (imports %v)", pkg, imports)
		case !slices.Equal(doc, imports):
			t.Errorf("docs/architecture.md: %s imports %v, the map says %v", pkg, imports, doc)
		}
	}
	for pkg := range documented {
		if _, ok := actual[pkg]; !ok {
			t.Errorf("docs/architecture.md has a row for %s, which is not a package", pkg)
		}
	}
}
