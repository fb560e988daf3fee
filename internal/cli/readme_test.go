package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// The documentation is README.md (the front page) and docs/*.md. The tests
// below keep its examples true: the transcripts are the tool's own output
// (TestREADMETranscript), every regctl command shown exists and parses
// (TestREADMECommands), and every link between the pages leads somewhere
// (TestREADMELinks).

// repoRoot is the module root, relative to this package's directory.
const repoRoot = "../.."

// docPage is one page of the documentation, by its path from the module
// root.
type docPage struct {
	path string
	text string
}

// docPages reads README.md and docs/*.md.
func docPages(t *testing.T) []docPage {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	paths = append([]string{filepath.Join(repoRoot, "README.md")}, paths...)
	var pages []docPage
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, docPage{path: filepath.ToSlash(rel), text: string(data)})
	}
	return pages
}

var transcriptMarker = regexp.MustCompile(`<!-- transcript: (\S+) -->\n`)

// TestREADMETranscript checks that every transcript the documentation
// shows, marked `<!-- transcript: PATH -->` before a console block, is
// exactly the golden file PATH (without its "stderr: " prefixes), so the
// examples cannot drift: the golden files are the tool's output, kept true
// by the tests that write them (testdata/readme.golden by TestREADME). The
// administration session must be shown somewhere.
func TestREADMETranscript(t *testing.T) {
	shown := map[string]bool{}
	for _, page := range docPages(t) {
		for _, m := range transcriptMarker.FindAllStringSubmatchIndex(page.text, -1) {
			golden := page.text[m[2]:m[3]]
			shown[golden] = true
			rest, ok := strings.CutPrefix(page.text[m[1]:], "```console\n")
			if !ok {
				t.Errorf("%s: the transcript of %s is not followed by a ```console block", page.path, golden)
				continue
			}
			block, _, ok := strings.Cut(rest, "\n```\n")
			if !ok {
				t.Errorf("%s: the transcript block of %s is not closed", page.path, golden)
				continue
			}
			if !strings.HasPrefix(golden, "internal/cli/testdata/") {
				t.Errorf("%s: transcript %s: want a golden file under internal/cli/testdata/", page.path, golden)
				continue
			}
			data, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(golden)))
			if err != nil {
				t.Errorf("%s: %v", page.path, err)
				continue
			}
			want := strings.TrimRight(strings.ReplaceAll(string(data), "stderr: ", ""), "\n")
			if block != want {
				t.Errorf("%s: transcript differs from %s (without the stderr: prefixes):\n%s", page.path, golden, diffLines(want, block))
			}
		}
	}
	if !shown["internal/cli/testdata/readme.golden"] {
		t.Error("no page shows the administration transcript (<!-- transcript: internal/cli/testdata/readme.golden -->)")
	}
}

// TestREADMECommands checks that every regctl command in the
// documentation's code blocks names an existing command, with flags it
// has and the number of arguments it takes.
func TestREADMECommands(t *testing.T) {
	ios, _, _, _ := cmdutil.Test()
	root := NewCmdRoot(cmdutil.NewFactory(ios))
	n := 0
	for _, page := range docPages(t) {
		for _, line := range codeLines(page.text) {
			for _, args := range regctlInvocations(line) {
				n++
				cmd, rest, err := root.Find(args)
				if err == nil && cmd == root && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
					err = errUnknownCommand
				}
				if err == nil {
					err = cmd.ParseFlags(rest)
				}
				if err == nil {
					err = cmd.ValidateArgs(cmd.Flags().Args())
				}
				if err != nil {
					t.Errorf("%s: %s: %v", page.path, line, err)
				}
				// ParseFlags keeps values between commands: start afresh.
				root = NewCmdRoot(cmdutil.NewFactory(ios))
			}
		}
	}
	if n < 10 {
		t.Errorf("found only %d regctl commands in the documentation's code blocks", n)
	}
}

type docError string

func (e docError) Error() string { return string(e) }

const errUnknownCommand = docError("unknown command")

// codeLines returns the command lines of a page's code blocks: every line
// of ```sh, ```bash and unlabelled fenced blocks and of indented blocks,
// and the "$ " lines of ```console blocks, with backslash continuations
// joined.
func codeLines(text string) []string {
	var out []string
	fence, lang := false, ""
	var pending string
	for _, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "```") {
			fence = !fence
			lang = strings.TrimPrefix(trimmed, "```")
			continue
		}
		var cmd string
		switch {
		case fence && lang == "console":
			c, ok := strings.CutPrefix(l, "$ ")
			if !ok {
				continue
			}
			cmd = c
		case fence && (lang == "" || lang == "sh" || lang == "bash"):
			cmd = l
		case !fence && strings.HasPrefix(l, "    ") && trimmed != "":
			cmd = trimmed
		default:
			continue
		}
		if c, ok := strings.CutSuffix(cmd, "\\"); ok {
			pending += c
			continue
		}
		out = append(out, pending+cmd)
		pending = ""
	}
	return out
}

// regctlInvocations splits a shell line into words and returns the
// arguments of each regctl (or bin/regctl) that starts a command in it.
func regctlInvocations(line string) [][]string {
	var out [][]string
	var cur []string
	in := false
	start := true
	for _, w := range shellWords(line) {
		if w.op {
			if in {
				out = append(out, cur)
			}
			cur, in = nil, false
			start = w.text == "|" || w.text == "&&" || w.text == "||" || w.text == ";"
			if w.text == "#" {
				return out
			}
			continue
		}
		switch {
		case in:
			cur = append(cur, w.text)
		case start && (w.text == "regctl" || strings.HasSuffix(w.text, "/regctl")):
			in = true
		}
		start = false
	}
	if in {
		out = append(out, cur)
	}
	return out
}

type shellWord struct {
	text string
	op   bool // |, &&, ||, ;, a redirection, or # (a comment)
}

// shellWords splits a line as sh would, enough for documentation: quotes,
// backslash escapes, operators and comments.
func shellWords(line string) []shellWord {
	var words []shellWord
	var b strings.Builder
	have := false
	flush := func() {
		if have {
			words = append(words, shellWord{text: b.String()})
		}
		b.Reset()
		have = false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			b.WriteString(line[i+1 : i+1+j])
			have = true
			i += j + 1
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				b.WriteByte(line[i])
			}
			have = true
		case c == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
			have = true
		case c == '#' && !have:
			flush()
			return append(words, shellWord{text: "#", op: true})
		case c == '|' || c == '&' || c == ';' || c == '>' || c == '<':
			flush()
			op := string(c)
			if i+1 < len(line) && (line[i+1] == c || (c == '>' && line[i+1] == '&')) {
				op += string(line[i+1])
				i++
			}
			words = append(words, shellWord{text: op, op: true})
		default:
			b.WriteByte(c)
			have = true
		}
	}
	flush()
	return words
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestREADMELinks checks that every relative link in the documentation
// leads to a file that exists and, with a #fragment into a page, to a
// heading of that page.
func TestREADMELinks(t *testing.T) {
	pages := docPages(t)
	anchors := map[string]map[string]bool{}
	for _, page := range pages {
		anchors[page.path] = headingAnchors(page.text)
	}
	for _, page := range pages {
		for _, m := range mdLink.FindAllStringSubmatch(stripCode(page.text), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(link, "#")
			target := page.path
			if file != "" {
				target = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(page.path), file)))
				if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(target))); err != nil {
					t.Errorf("%s: link %s: %v", page.path, link, err)
					continue
				}
			}
			if frag == "" {
				continue
			}
			a, ok := anchors[target]
			if !ok {
				t.Errorf("%s: link %s: a fragment into %s, which is not a documentation page", page.path, link, target)
			} else if !a[frag] {
				t.Errorf("%s: link %s: %s has no heading #%s", page.path, link, target, frag)
			}
		}
	}
}

// stripCode removes fenced blocks and code spans, where ]( is not a link.
func stripCode(text string) string {
	var b strings.Builder
	fence := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fence = !fence
			continue
		}
		if !fence {
			b.WriteString(regexp.MustCompile("`[^`]*`").ReplaceAllString(l, ""))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// headingAnchors returns the GitHub anchors of a page's headings:
// lowercase, punctuation dropped, spaces as hyphens.
func headingAnchors(text string) map[string]bool {
	a := map[string]bool{}
	fence := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r > 127:
				b.WriteRune(r)
			}
		}
		a[b.String()] = true
	}
	return a
}
