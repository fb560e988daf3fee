// Command regctl-docgen writes regctl's man pages and shell completions
// for packaging (scripts/dist.sh puts them into the .deb):
//
//	regctl-docgen -out DIR
//
// writes DIR/man1/regctl*.1.gz (one page per command, gzipped as Debian
// policy wants), DIR/regctl.bash, DIR/_regctl (zsh) and DIR/regctl.fish.
// The pages' date is SOURCE_DATE_EPOCH if set, so that a build from the
// same commit gives the same bytes; their footer names the version the
// binary was stamped with (build it with make's -ldflags).
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/regctl/regctl/internal/cli"
)

func main() {
	out := flag.String("out", "", "directory to write into (created if missing)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: regctl-docgen -out DIR")
		os.Exit(2)
	}
	date, err := sourceDate(os.Getenv("SOURCE_DATE_EPOCH"))
	if err == nil {
		err = generate(newRoot(), *out, date)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "regctl-docgen: %v\n", err)
		os.Exit(1)
	}
}

// newRoot is regctl's command tree, as cmd/regctl builds it (cli.Main).
// Nothing runs: the factory's dependencies are lazy.
func newRoot() *cobra.Command { return cli.NewCmdRoot(cli.NewFactory(cli.System())) }

// sourceDate is SOURCE_DATE_EPOCH (seconds since 1970), or now if empty.
func sourceDate(epoch string) (time.Time, error) {
	if epoch == "" {
		return time.Now().UTC(), nil
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", epoch)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// generate writes the man pages of root and every available command under
// it, and root's bash, zsh and fish completions (what `regctl completion`
// prints), into dir.
func generate(root *cobra.Command, dir string, date time.Time) error {
	root.DisableAutoGenTag = true // no "Auto generated … on DATE" line
	root.InitDefaultVersionFlag() // cobra adds --version only when executing
	man := filepath.Join(dir, "man1")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return err
	}
	if err := genManTree(root, man, date); err != nil {
		return err
	}
	for name, gen := range map[string]func(io.Writer) error{
		"regctl.bash": func(w io.Writer) error { return root.GenBashCompletionV2(w, true) },
		"_regctl":     root.GenZshCompletion,
		"regctl.fish": func(w io.Writer) error { return root.GenFishCompletion(w, true) },
	} {
		var b bytes.Buffer
		if err := gen(&b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// genManTree is doc.GenManTree, gzipped: one page per available command
// (not hidden, not a help topic), named by its path joined with "-".
func genManTree(cmd *cobra.Command, dir string, date time.Time) error {
	for _, c := range cmd.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := genManTree(c, dir, date); err != nil {
			return err
		}
	}
	header := &doc.GenManHeader{
		Section: "1",
		Date:    &date,
		Source:  strings.TrimSpace("regctl " + cmd.Root().Version),
		Manual:  "regctl manual",
	}
	var page bytes.Buffer
	if err := doc.GenMan(cmd, header, &page); err != nil {
		return fmt.Errorf("man page of %s: %w", cmd.CommandPath(), err)
	}
	// gzip -9n: no name, no timestamp, so the bytes depend on the page only.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(page.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	name := strings.ReplaceAll(cmd.CommandPath(), " ", "-") + ".1.gz"
	return os.WriteFile(filepath.Join(dir, name), gz.Bytes(), 0o644)
}
