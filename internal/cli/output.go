package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// Output formats.
const (
	formatTable = "table"
	formatText  = "text"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// addOutputFlag registers -o/--output with the allowed formats (the first
// is the default) and their shell completion.
func addOutputFlag(cmd *cobra.Command, p *string, allowed ...string) {
	cmd.Flags().StringVarP(p, "output", "o", allowed[0], "output format: "+strings.Join(allowed, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

// checkOutput validates an --output value.
func checkOutput(v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return cmdutil.FlagErrorf("--output %q: use %s", v, strings.Join(allowed, ", "))
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeYAML writes v as YAML (two-space indent).
func writeYAML(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// writeData writes v as JSON or YAML.
func writeData(w io.Writer, format string, v any) error {
	if format == formatYAML {
		return writeYAML(w, v)
	}
	return writeJSON(w, v)
}

// table is a borderless, left-aligned table in the style of kubectl: an
// upper-case header row and columns separated by two spaces.
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

// render writes the table to w, without trailing blanks.
func (t *table) render(w io.Writer) error {
	var buf bytes.Buffer
	tbl := tablewriter.NewTable(&buf,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders:  tw.BorderNone,
			Symbols:  tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{Separators: tw.SeparatorsNone, Lines: tw.LinesNone},
		})),
		tablewriter.WithConfig(tablewriter.Config{
			Header: tw.CellConfig{
				Alignment:  tw.CellAlignment{Global: tw.AlignLeft},
				Formatting: tw.CellFormatting{AutoFormat: tw.Off, AutoWrap: tw.WrapNone},
			},
			Row: tw.CellConfig{
				Alignment:  tw.CellAlignment{Global: tw.AlignLeft},
				Formatting: tw.CellFormatting{AutoWrap: tw.WrapNone},
			},
		}),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "  ", Overwrite: true}),
		tablewriter.WithTrimSpace(tw.Off),
	)
	tbl.Header(toAny(t.header)...)
	for _, r := range t.rows {
		if err := tbl.Append(toAny(r)...); err != nil {
			return err
		}
	}
	if err := tbl.Render(); err != nil {
		return err
	}
	var out strings.Builder
	for _, line := range strings.Split(buf.String(), "\n") {
		if line = strings.TrimRight(line, " "); line != "" {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		// An empty cell would collapse; show a dash.
		if v == "" {
			v = "-"
		}
		out[i] = v
	}
	return out
}

// colors applies ANSI colours when enabled (stdout is a terminal).
type colors struct{ on bool }

func (c colors) wrap(code, s string) string {
	if !c.on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (c colors) green(s string) string { return c.wrap("32", s) }
func (c colors) red(s string) string   { return c.wrap("31", s) }
func (c colors) bold(s string) string  { return c.wrap("1", s) }

func (f *Factory) colors() colors { return colors{on: f.IO.ColorEnabled()} }

// Dates are shown in the local time zone with minute resolution and the
// zone's abbreviation, followed by the time relative to now.
const dateLayout = "2006-01-02 15:04 MST"

// formatDate renders t as "2026-12-31 00:00 UTC (in 12 days)".
func formatDate(t, now time.Time, loc *time.Location) string {
	return fmt.Sprintf("%s (%s)", t.In(loc).Format(dateLayout), relTime(t, now))
}

// formatExpiry renders an optional expiry: "never", "DATE (in 3 days)" or
// "DATE (expired 2 hours ago)".
func formatExpiry(t *time.Time, now time.Time, loc *time.Location) string {
	if t == nil {
		return "never"
	}
	if acl.Expired(t, now) {
		return fmt.Sprintf("%s (expired %s)", t.In(loc).Format(dateLayout), relTime(*t, now))
	}
	return formatDate(*t, now, loc)
}

// relTime renders t relative to now: "in 12 days", "3 hours ago", "now",
// rounded to the nearest unit.
func relTime(t, now time.Time) string {
	d := t.Sub(now)
	future := d > 0
	if d < 0 {
		d = -d
	}
	var n int64
	var unit string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		n, unit = round(d, time.Second), "second"
	case d < time.Hour:
		n, unit = round(d, time.Minute), "minute"
	case d < 48*time.Hour:
		n, unit = round(d, time.Hour), "hour"
	case d < 60*24*time.Hour:
		n, unit = round(d, 24*time.Hour), "day"
	case d < 2*365*24*time.Hour:
		n, unit = round(d, 30*24*time.Hour), "month"
	default:
		n, unit = round(d, 365*24*time.Hour), "year"
	}
	if n != 1 {
		unit += "s"
	}
	if future {
		return fmt.Sprintf("in %d %s", n, unit)
	}
	return fmt.Sprintf("%d %s ago", n, unit)
}

func round(d, unit time.Duration) int64 { return int64((d + unit/2) / unit) }

// utc returns a copy of an optional time in UTC, for JSON and YAML.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// labelPairs renders labels as sorted KEY=VALUE pairs, one per value, in
// the form --label takes them.
func labelPairs(labels map[string][]string) []string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		for _, v := range labels[k] {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// formatActions renders a rule's or grant's actions; an empty list is an
// explicit deny.
func formatActions(actions []string) string {
	if len(actions) == 0 {
		return "(deny)"
	}
	return strings.Join(actions, ",")
}

// formatMatch renders a rule's conditions as "field=pattern" pairs in the
// order account, type, name, service, ip, labels.KEY; "(any)" when the
// rule has none.
func formatMatch(m acl.Match) string {
	var parts []string
	add := func(field string, p *string) {
		if p != nil {
			parts = append(parts, field+"="+quoteIfNeeded(*p))
		}
	}
	add("account", m.Account)
	add("type", m.Type)
	add("name", m.Name)
	add("service", m.Service)
	add("ip", m.IP)
	keys := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, "labels."+k+"="+quoteIfNeeded(m.Labels[k]))
	}
	if len(parts) == 0 {
		return "(any)"
	}
	return strings.Join(parts, " ")
}

// quoteIfNeeded quotes an empty pattern or one with blanks, so that the
// rendered match stays readable.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"") {
		return strconv.Quote(s)
	}
	return s
}

// describeRule renders a rule in one line for messages.
func describeRule(r acl.Rule) string {
	s := fmt.Sprintf("seq %d: %s -> %s", r.Seq, formatMatch(r.Match), formatActions(r.Actions))
	if r.ExpiresAt != nil {
		s += ", expires " + r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if r.Comment != "" {
		s += fmt.Sprintf(" (%q)", r.Comment)
	}
	return s
}

// oneLine joins a multi-line error (errors.Join) into one line.
func oneLine(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "\n") {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(msg, "\n", "; "))
}
