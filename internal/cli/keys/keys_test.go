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

// TestKeysJoinCommands: request on the joining host, sign on the CA's
// host (from a file and from stdin), join with the CA certificate and the
// refresh secret; the joined directory loads, and bad input exits with a
// usage or an error status and a message that says what is wrong.
func TestKeysJoinCommands(t *testing.T) {
	e := newEnv(t)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	e.Must(cmdutil.ExitOK, "", "keys", "generate", "--dir", a)
	e.Out.Reset()
	e.Must(cmdutil.ExitOK, "", "keys", "request", "--dir", b)
	csr := e.Out.String()
	if !strings.HasPrefix(csr, "-----BEGIN CERTIFICATE REQUEST-----") {
		t.Fatalf("keys request printed %q", csr)
	}
	csrFile := filepath.Join(t.TempDir(), "signing.csr")
	cmdtest.WriteFile(t, csrFile, csr)
	e.Out.Reset()
	e.Must(cmdutil.ExitOK, "", "keys", "sign", "--dir", a, csrFile)
	fromFile := e.Out.String()
	e.Out.Reset()
	e.Must(cmdutil.ExitOK, csr, "keys", "sign", "--dir", a, "-")
	if !strings.HasPrefix(fromFile, "-----BEGIN CERTIFICATE-----") || !strings.HasPrefix(e.Out.String(), "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("keys sign printed %q and %q", fromFile, e.Out)
	}
	certFile := filepath.Join(t.TempDir(), "signing.crt")
	cmdtest.WriteFile(t, certFile, fromFile)
	ca, refresh := filepath.Join(a, regkeys.CACertFile), filepath.Join(a, regkeys.RefreshKeyFile)
	e.Must(cmdutil.ExitOK, "", "keys", "join", "--dir", b, "--cert", certFile, "--ca", ca, "--refresh-key", refresh)
	if !strings.Contains(e.ErrOut.String(), "Joined: "+b) {
		t.Errorf("stderr: %s", e.ErrOut)
	}
	if _, err := regkeys.Load(b, cmdtest.FixedNow); err != nil {
		t.Errorf("the joined directory does not load: %v", err)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"keys", "request"}, cmdutil.ExitUsage, "--dir is required"},
		{[]string{"keys", "sign", "--dir", a}, cmdutil.ExitUsage, "accepts 1 arg"},
		{[]string{"keys", "sign", "--dir", b, csrFile}, cmdutil.ExitError, "sign on the host whose keys directory has the CA key"},
		{[]string{"keys", "sign", "--dir", a, certFile}, cmdutil.ExitError, `want "CERTIFICATE REQUEST"`},
		{[]string{"keys", "join", "--dir", b, "--cert", certFile, "--ca", ca}, cmdutil.ExitUsage, "--refresh-key is required"},
		{[]string{"keys", "join", "--dir", b, "--cert", certFile, "--ca", certFile, "--refresh-key", refresh}, cmdutil.ExitError, "the CA certificate is not a CA"},
	} {
		e.ErrOut.Reset()
		e.Must(tt.code, "", tt.args...)
		if !strings.Contains(e.ErrOut.String(), tt.want) {
			t.Errorf("%v: stderr %q, want %q", tt.args, e.ErrOut, tt.want)
		}
	}
}
