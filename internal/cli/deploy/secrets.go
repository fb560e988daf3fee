package deploy

import (
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/redact"
)

// maskSecrets starts the set of secrets of a command that works from c
// (render, init) and returns it with a copy of ios whose Out and ErrOut
// mask them. The command adds what it generates or reads to the same set
// before anything prints it. Call flushOutput on the copy when done.
func maskSecrets(ios *cmdutil.IOStreams, c *config.Config) (*redact.Set, *cmdutil.IOStreams) {
	secrets := &redact.Set{}
	secrets.Add(c.Secrets()...)
	masked := *ios
	masked.Out, masked.ErrOut = secrets.Writer(ios.Out), secrets.Writer(ios.ErrOut)
	return secrets, &masked
}

// flushOutput writes out what ios's streams hold back (a masking writer
// keeps the end of a line that might be the start of a secret): before
// reading an answer, and at the end.
func flushOutput(ios *cmdutil.IOStreams) {
	for _, w := range []any{ios.Out, ios.ErrOut} {
		if f, ok := w.(interface{ Flush() error }); ok {
			_ = f.Flush()
		}
	}
}
