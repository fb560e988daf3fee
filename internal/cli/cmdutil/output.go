package cmdutil

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
)

// Output formats.
const (
	FormatTable = "table"
	FormatText  = "text"
	FormatJSON  = "json"
	FormatYAML  = "yaml"
)

// AddOutputFlag registers -o/--output with the allowed formats (the first
// is the default) and their shell completion.
func AddOutputFlag(cmd *cobra.Command, p *string, allowed ...string) {
	cmd.Flags().StringVarP(p, "output", "o", allowed[0], "output format: "+strings.Join(allowed, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

// CheckOutput validates an --output value.
func CheckOutput(v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return FlagErrorf("--output %q: use %s", v, strings.Join(allowed, ", "))
}

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteYAML writes v as YAML (two-space indent).
func WriteYAML(w io.Writer, v any) error {
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

// WriteData writes v as JSON or YAML.
func WriteData(w io.Writer, format string, v any) error {
	if format == FormatYAML {
		return WriteYAML(w, v)
	}
	return WriteJSON(w, v)
}

// Table is a borderless, left-aligned table in the style of kubectl: an
// upper-case header row and columns separated by two spaces.
type Table struct {
	header []string
	rows   [][]string
}

// NewTable starts a table with the given header.
func NewTable(header ...string) *Table { return &Table{header: header} }

// Row appends a row.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Render writes the table to w, without trailing blanks.
func (t *Table) Render(w io.Writer) error {
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

// Colors applies ANSI colours when enabled (stdout is a terminal).
type Colors struct{ On bool }

// Wrap applies the ANSI colour code to s when colours are on.
func (c Colors) Wrap(code, s string) string {
	if !c.On || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// Green colours s green when colours are on.
func (c Colors) Green(s string) string { return c.Wrap("32", s) }

// Red colours s red when colours are on.
func (c Colors) Red(s string) string { return c.Wrap("31", s) }

// Colors are on when standard output is a terminal (IOStreams.ColorEnabled).
func (f *Factory) Colors() Colors { return f.Deps().Colors() }

// DateLayout shows dates in the local time zone with minute resolution and
// the zone's abbreviation; FormatDate adds the time relative to now.
const DateLayout = "2006-01-02 15:04 MST"

// FormatDate renders t as "2026-12-31 00:00 UTC (in 12 days)".
func FormatDate(t, now time.Time, loc *time.Location) string {
	return fmt.Sprintf("%s (%s)", t.In(loc).Format(DateLayout), RelTime(t, now))
}

// FormatExpiry renders an optional expiry: "never", "DATE (in 3 days)" or
// "DATE (expired 2 hours ago)".
func FormatExpiry(t *time.Time, now time.Time, loc *time.Location) string {
	if t == nil {
		return "never"
	}
	if acl.Expired(t, now) {
		return fmt.Sprintf("%s (expired %s)", t.In(loc).Format(DateLayout), RelTime(*t, now))
	}
	return FormatDate(*t, now, loc)
}

// RelTime renders t relative to now: "in 12 days", "3 hours ago", "now",
// rounded to the nearest unit.
func RelTime(t, now time.Time) string {
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

// UTC returns a copy of an optional time in UTC, for JSON and YAML.
func UTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// LabelPairs renders labels as sorted KEY=VALUE pairs, one per value, in
// the form --label takes them.
func LabelPairs(labels map[string][]string) []string {
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

// FormatActions renders a rule's or grant's actions; an empty list is an
// explicit deny.
func FormatActions(actions []string) string {
	if len(actions) == 0 {
		return "(deny)"
	}
	return strings.Join(actions, ",")
}

// FormatMatch renders a rule's conditions as "field=pattern" pairs in the
// order account, type, name, service, ip, labels.KEY; "(any)" when the
// rule has none.
func FormatMatch(m acl.Match) string {
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

// DescribeRule renders a rule in one line for messages.
func DescribeRule(r acl.Rule) string {
	s := fmt.Sprintf("seq %d: %s -> %s", r.Seq, FormatMatch(r.Match), FormatActions(r.Actions))
	if r.ExpiresAt != nil {
		s += ", expires " + r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if r.Comment != "" {
		s += fmt.Sprintf(" (%q)", r.Comment)
	}
	return s
}

// OneLine joins a multi-line error (errors.Join) into one line.
func OneLine(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "\n") {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(msg, "\n", "; "))
}
