package interop

// The README's compatibility table is the summary of a whole run of the
// matrix: `make interop INTEROP_ARGS=-update` rewrites it, and every run
// checks that no cell the README claims green ("yes") has turned red, like
// a golden file.

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/testenv/clients"
)

// dockerContainerd is the column of docker with the containerd image store.
const dockerContainerd = "docker-containerd"

// matrixKinds are the matrix's clients: package clients' AllKinds and
// docker with the containerd image store.
var matrixKinds = append(slices.Clone(clients.AllKinds), dockerContainerd)

var update = flag.Bool("update", false, "rewrite README.md's compatibility table from this run of the matrix (the whole matrix only)")

// readmePath is the README, from this package's directory.
const readmePath = "../../README.md"

// The markers around the generated table in the README.
const (
	readmeBegin = "<!-- interop table: written by `make interop INTEROP_ARGS=-update` from a run of the matrix; do not edit -->"
	readmeEnd   = "<!-- end of interop table -->"
)

// column is one column of the README table: the checks it sums up, on
// the setups given (the matrix's registries, or the two-registry setup).
type column struct {
	header string
	checks []string
	two    bool // the checks of the setup of two registries behind one regctl serve
}

var readmeColumns = []column{
	{header: "login", checks: []string{"login"}},
	{header: "push, pull", checks: []string{"push-pull"}},
	{header: "denied push", checks: []string{"denied-push"}},
	{header: "read-only", checks: []string{"read-only"}},
	{header: "copy", checks: []string{"copy"}},
	{header: "delete", checks: []string{"delete"}},
	{header: "catalog", checks: []string{"catalog"}},
	{header: "refresh token", checks: []string{"refresh-token"}},
	{header: "two registries", checks: []string{pushPullA, pushPullB}, two: true},
}

// The checks of the two-registry setup: each client's push and pull on
// service A's registry and on service B's.
const (
	pushPullA = "push-pull-A"
	pushPullB = "push-pull-B"
)

// readmeCells sums the run up, client → header → cell: "yes" and the
// token flavours when every setup passed, "no" when the client lacks
// the operation everywhere, "FAIL on …" or "skip on …" when some setups
// did not pass, "-" when nothing ran. regs are the matrix's setups, two
// the two-registry one.
func (r *results) readmeCells(regs []string, two string, kinds []string) map[string]map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[string]string{}
	for _, kind := range kinds {
		out[kind] = map[string]string{}
		for _, col := range readmeColumns {
			setups := regs
			if col.two {
				setups = []string{two}
			}
			var ok, skip, fail []string
			var fl flavour
			for _, setup := range setups {
				for _, check := range col.checks {
					res, f := r.get(setup, kind, check)
					switch {
					case res == "":
					case res == "ok":
						ok, fl = append(ok, setup), fl|f
					case strings.HasPrefix(res, "skip"):
						skip = append(skip, setup)
					default:
						fail = append(fail, setup)
					}
				}
			}
			var c string
			switch {
			case len(fail) > 0:
				c = "FAIL on " + strings.Join(slices.Compact(fail), ", ")
			case len(ok) > 0 && len(skip) == 0:
				c = strings.TrimSpace("yes " + fl.String())
			case len(skip) > 0 && len(ok) == 0:
				c = "no"
			case len(skip) > 0:
				c = "skip on " + strings.Join(slices.Compact(skip), ", ")
			default:
				c = "-"
			}
			out[kind][col.header] = c
		}
	}
	return out
}

// readmeTable renders cells as the README's Markdown table, markers
// included.
func readmeTable(cells map[string]map[string]string, kinds []string) string {
	var b strings.Builder
	b.WriteString(readmeBegin + "\n\n| client |")
	for _, col := range readmeColumns {
		b.WriteString(" " + col.header + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(readmeColumns)) + "\n")
	for _, kind := range kinds {
		b.WriteString("| " + kind + " |")
		for _, col := range readmeColumns {
			b.WriteString(" " + cells[kind][col.header] + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\n" + readmeEnd)
	return b.String()
}

// readmeSection returns where the generated table is in doc: the start
// of its begin marker and the end of its end marker.
func readmeSection(doc string) (int, int, error) {
	i := strings.Index(doc, readmeBegin)
	j := strings.Index(doc, readmeEnd)
	if i < 0 || j < i {
		return 0, 0, fmt.Errorf("README.md has no interop table between %q and %q", readmeBegin, readmeEnd)
	}
	return i, j + len(readmeEnd), nil
}

// parseREADMETable reads the generated table of doc back: client →
// header → cell.
func parseREADMETable(doc string) (map[string]map[string]string, error) {
	i, j, err := readmeSection(doc)
	if err != nil {
		return nil, err
	}
	var header []string
	out := map[string]map[string]string{}
	for _, line := range strings.Split(doc[i:j], "\n") {
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		f := strings.Split(strings.Trim(line, "|"), "|")
		for k := range f {
			f[k] = strings.TrimSpace(f[k])
		}
		if header == nil {
			header = f
			continue
		}
		if len(f) != len(header) {
			return nil, fmt.Errorf("README.md interop table: row %q has %d cells, the header %d", line, len(f), len(header))
		}
		out[f[0]] = map[string]string{}
		for k := 1; k < len(f); k++ {
			out[f[0]][header[k]] = f[k]
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("README.md interop table has no rows")
	}
	return out, nil
}

// green reports whether a cell says the client works.
func green(cell string) bool { return cell == "yes" || strings.HasPrefix(cell, "yes ") }

// regressions lists the cells the README claims green that this run
// did not pass. A cell this run did not reach ("-", or a client or column
// missing) counts only when the whole matrix ran (partial false).
func regressions(readme, run map[string]map[string]string, partial bool) []string {
	var out []string
	for _, kind := range slices.Sorted(maps.Keys(readme)) {
		for _, col := range readmeColumns {
			claim := readme[kind][col.header]
			if !green(claim) {
				continue
			}
			got, ok := run[kind][col.header]
			if !ok || got == "" {
				got = "-"
			}
			if green(got) || (got == "-" && partial) {
				continue
			}
			out = append(out, fmt.Sprintf("%s, %s: README.md says %q, this run %q", kind, col.header, claim, got))
		}
	}
	return out
}

// partialRun reports whether -run picked part of the matrix
// (TestInterop/…).
func partialRun() bool {
	f := flag.Lookup("test.run")
	return f != nil && strings.Contains(f.Value.String(), "/")
}

// checkREADME compares the run with the README's table (fails on a green
// cell turned red) or, with -update, rewrites the table from the run.
func checkREADME(t *testing.T, r *results, regs []string, two string, kinds []string) {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	run := r.readmeCells(regs, two, kinds)
	want := readmeTable(run, kinds)
	i, j, err := readmeSection(doc)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if partialRun() {
			t.Fatal("-update rewrites README.md from the whole matrix: run it without -run TestInterop/…")
		}
		if err := os.WriteFile(readmePath, []byte(doc[:i]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the interop table in %s", readmePath)
		return
	}
	readme, err := parseREADMETable(doc)
	if err != nil {
		t.Fatal(err)
	}
	bad := regressions(readme, run, partialRun())
	for _, msg := range bad {
		t.Errorf("README.md's compatibility table: %s", msg)
	}
	if len(bad) == 0 && !partialRun() && doc[i:j] != want {
		t.Logf("README.md's interop table differs from this run, without a regression; `make interop INTEROP_ARGS=-update` rewrites it:\n%s", want)
	}
}

// TestREADMETableRegression: a cell the README claims green that turns
// red, or to a skip, is reported; one the run did not reach is reported
// only for a whole run; a cell that improves is not a regression.
func TestREADMETableRegression(t *testing.T) {
	kinds := []string{"crane", "ctr"}
	regs := []string{"reg-1", "reg-2"}
	before := newResults()
	for _, reg := range append(slices.Clone(regs), "two") {
		for _, kind := range kinds {
			for _, col := range readmeColumns {
				for _, c := range col.checks {
					before.set(reg, kind, c, "ok")
					before.addFlavour(reg, kind, c, flavourAccount)
				}
			}
		}
	}
	before.set("reg-1", "ctr", "login", "skip")
	before.set("reg-2", "ctr", "login", "skip")
	doc := "intro\n\n" + readmeTable(before.readmeCells(regs, "two", kinds), kinds) + "\n\nafter\n"
	readme, err := parseREADMETable(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := readme["crane"]["push, pull"]; got != "yes A" {
		t.Fatalf("crane, push, pull: README cell %q, want %q", got, "yes A")
	}
	if got := readme["ctr"]["login"]; got != "no" {
		t.Fatalf("ctr, login: README cell %q, want no", got)
	}
	if got := regressions(readme, before.readmeCells(regs, "two", kinds), false); len(got) != 0 {
		t.Fatalf("the run the README came from: regressions %q", got)
	}

	after := newResults()
	for setup, byKind := range before.m {
		for kind, byCheck := range byKind {
			for check, res := range byCheck {
				after.set(setup, kind, check, res)
			}
		}
	}
	after.set("reg-2", "crane", "copy", "FAIL")      // green to red
	after.set("two", "crane", pushPullB, "skip")     // green to a skip
	after.set("reg-1", "ctr", "login", "ok")         // better: not a regression
	delete(after.m["reg-1"]["ctr"], "catalog")       // reg-2 still ran it
	delete(after.m["reg-1"]["crane"], "denied-push") // not reached at all:
	delete(after.m["reg-2"]["crane"], "denied-push") // a regression in a whole run only
	want := []string{
		`crane, denied push: README.md says "yes A", this run "-"`,
		`crane, copy: README.md says "yes A", this run "FAIL on reg-2"`,
		`crane, two registries: README.md says "yes A", this run "skip on two"`,
	}
	if got := regressions(readme, after.readmeCells(regs, "two", kinds), false); !slices.Equal(got, want) {
		t.Errorf("whole run: regressions\n%q\nwant\n%q", got, want)
	}
	if got := regressions(readme, after.readmeCells(regs, "two", kinds), true); !slices.Equal(got, want[1:]) {
		t.Errorf("partial run: regressions\n%q\nwant\n%q", got, want[1:])
	}
}

// TestREADMETableParses: README.md has the generated table, every client
// of the matrix has a row and every column a header.
func TestREADMETableParses(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := parseREADMETable(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range matrixKinds {
		for _, col := range readmeColumns {
			if _, ok := readme[kind][col.header]; !ok {
				t.Errorf("README.md's interop table has no cell for %s, %s", kind, col.header)
			}
		}
	}
}
