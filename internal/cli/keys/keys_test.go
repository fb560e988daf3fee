package keys

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	regkeys "github.com/regctl/regctl/internal/keys"
)

// newEnv runs `regctl keys` command lines.
func newEnv(t *testing.T) *cmdtest.Env {
	e := cmdtest.NewEnv(t, nil)
	e.Root = func(f *cmdutil.Factory) *cobra.Command { return cmdtest.Root(f, NewCmdKeys(f)) }
	return e
}

func TestKeysRotateCommand(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "keys")
	e.Must(cmdutil.ExitOK, "", "keys", "generate", "--dir", dir)
	before, err := regkeys.Load(dir, cmdtest.FixedNow)
	if err != nil {
		t.Fatal(err)
	}
	e.Must(cmdutil.ExitOK, "", "keys", "rotate", "--dir", dir)
	after, err := regkeys.Load(dir, cmdtest.FixedNow)
	if err != nil {
		t.Fatal(err)
	}
	out := e.ErrOut.String()
	for _, want := range []string{"Rotated the es256 signing key in " + dir, "new kid       " + after.KeyID, "previous kid  " + before.KeyID, regkeys.PrevSigningCrtFile, "the registry needs no change"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if after.KeyID == before.KeyID || len(after.Previous) != 1 {
		t.Errorf("kid %s -> %s, previous %d", before.KeyID, after.KeyID, len(after.Previous))
	}
	if e.Out.Len() != 0 {
		t.Errorf("stdout: %s", e.Out)
	}
	if !bytes.Equal(after.RefreshKey, before.RefreshKey) || strings.Contains(out, "refresh key") {
		t.Error("a plain rotation changed refresh.key")
	}

	e.ErrOut.Reset()
	e.Must(cmdutil.ExitOK, "", "keys", "rotate", "--dir", dir, "--refresh-key")
	third, err := regkeys.Load(dir, cmdtest.FixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(third.RefreshKey, after.RefreshKey) || !strings.Contains(e.ErrOut.String(), "refresh key   replaced") {
		t.Errorf("--refresh-key kept refresh.key:\n%s", e.ErrOut)
	}
	if fi, err := os.Stat(filepath.Join(dir, regkeys.RefreshKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("refresh.key after --refresh-key: %v, %v", fi.Mode(), err)
	}

	if code := e.Run("", "keys", "rotate"); code != cmdutil.ExitUsage || !strings.Contains(e.ErrOut.String(), "--dir is required") {
		t.Errorf("without --dir: exit %d: %s", code, e.ErrOut)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if code := e.Run("", "keys", "rotate", "--dir", missing); code != cmdutil.ExitError || !strings.Contains(e.ErrOut.String(), filepath.Join(missing, regkeys.CAKeyFile)) {
		t.Errorf("missing directory: exit %d: %s", code, e.ErrOut)
	}
}
