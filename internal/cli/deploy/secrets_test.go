package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/render"
)

// special holds every character that JSON, YAML, shell quoting or
// percent-encoding changes.
const special = `p&<>"\'%/:@?#[] +$`

// secretForms are the spellings of s that must never be printed: as it
// is, in a JSON string (with Go's HTML escaping and without), a YAML
// single-quoted string, a Go-quoted string, a shell single-quoted word,
// and percent-encoded as a query value, a path segment and a URL's user
// name or password.
func secretForms(s string) map[string]string {
	jsonBody := func(html bool) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if err := enc.Encode(s); err != nil {
			panic(err)
		}
		q := strings.TrimSpace(b.String())
		return q[1 : len(q)-1]
	}
	goq := strconv.Quote(s)
	return map[string]string{
		"raw":           s,
		"json":          jsonBody(true),
		"json-nohtml":   jsonBody(false),
		"go-quoted":     goq[1 : len(goq)-1],
		"yaml-single":   strings.ReplaceAll(s, "'", "''"),
		"shell-single":  strings.ReplaceAll(s, "'", `'\''`),
		"query-escaped": url.QueryEscape(s),
		"path-escaped":  url.PathEscape(s),
		"userinfo-pw":   strings.TrimPrefix(url.UserPassword("", s).String(), ":"),
		"userinfo-user": url.User(s).String(),
	}
}

// leaks reports every form of every secret found in out.
func leaks(t *testing.T, what, out string, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		for form, v := range secretForms(s) {
			if strings.Contains(out, v) {
				t.Errorf("%s prints %s (%s form %q)", what, name, form, v)
			}
		}
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("%s prints a private key", what)
	}
}

// manifestLine is a line of .regctl/manifest.json in a diff: a path and
// the SHA-256 of its content.
var manifestLine = regexp.MustCompile(`^\s*[-+]?\s*"[^"]+": "[0-9a-f]{64}",?$`)

// keyLines adds the base64 lines of the private keys below dir to secrets.
func keyLines(t *testing.T, dir string, secrets map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		for i, line := range strings.Split(provRead(t, filepath.Join(dir, e.Name())), "\n") {
			if line != "" && !strings.HasPrefix(line, "-----") {
				secrets[e.Name()+" line "+strconv.Itoa(i)] = line
				n++
			}
		}
	}
	if n == 0 {
		t.Fatalf("no private key lines in %s", dir)
	}
}

// provFailingRun fails every command that changes the host, and echoes
// the secrets back the way a failing tool might: in its output and in
// its error.
type provFailingRun struct {
	provision.Host
	echo string
}

func (h provFailingRun) Run(ctx context.Context, name string, args ...string) error {
	return h.RunInput(ctx, nil, name, args...)
}

func (h provFailingRun) RunInput(_ context.Context, _ []byte, name string, args ...string) error {
	return &provision.CmdError{Args: append([]string{name}, args...), Output: h.echo, Err: errors.New("exit status 1: " + h.echo)}
}

func (h provFailingRun) Query(context.Context, string, ...string) ([]byte, error) {
	return nil, errors.New("exit status 1: " + h.echo)
}

// TestSecretsNeverPrinted renders and dry-runs configurations whose secrets
// hold every character some encoding changes, and searches everything
// regctl prints (stdout, stderr, diffs, errors) for any spelling of them:
// the S3 secret key (before and after a rotation), the password in
// database.url, and what regctl generated (the registry's HTTP secret, the
// MongoDB password, the token-signing keys, self-signed certificate keys).
func TestSecretsNeverPrinted(t *testing.T) {
	// S3 secret keys may not hold whitespace; database.url's password
	// may, percent-encoded.
	s3Old := "s3-old-" + strings.ReplaceAll(special, " ", "")
	s3New := "s3-new-" + strings.ReplaceAll(special, " ", "")
	dbPassword := "db-" + special
	dbURL := "mongodb://" + url.UserPassword("regctl", dbPassword).String() + "@db.internal:27017/regctl?authSource=admin"
	// The password as database.url spells it.
	_, afterColon, _ := strings.Cut(strings.TrimPrefix(dbURL, "mongodb://"), ":")
	dbPasswordInURL := afterColon[:strings.LastIndex(afterColon, "@")]
	if dbPasswordInURL == dbPassword {
		t.Fatal("the test password needs percent-encoding in the URL")
	}

	s3Env := func(secret string) {
		t.Setenv("REGCTL_STORAGE_DRIVER", "s3")
		t.Setenv("REGCTL_STORAGE_S3_BUCKET", "images")
		t.Setenv("REGCTL_STORAGE_S3_REGION", "eu-central-1")
		t.Setenv("REGCTL_STORAGE_S3_ACCESS_KEY", "AKIAEXAMPLE")
		t.Setenv("REGCTL_STORAGE_S3_SECRET_KEY", secret)
	}
	initArgs := func(p, root string, extra ...string) []string {
		return append([]string{"init", "--config", p, "--root", root, "--dry-run"}, extra...)
	}

	t.Run("external mongo and s3", func(t *testing.T) {
		s3Env(s3Old)
		t.Setenv("REGCTL_DATABASE_URL", dbURL)
		p := provExample(t, "")
		root := filepath.Join(t.TempDir(), "root")
		build, _ := provRenderWith()
		var all strings.Builder
		run := func(what string, args []string, build func(*cmdutil.Factory) *cobra.Command) {
			t.Helper()
			code, stdout, stderr := provCmd(t, args, build)
			if code != 0 {
				t.Fatalf("%s: exit %d:\n%s", what, code, stderr)
			}
			all.WriteString(stdout + stderr)
		}

		// A fresh host: everything is new, and shown.
		run("init --dry-run on a fresh host", initArgs(p, root, "--self-signed"), provInitWith(provSystem()))
		// The first render generates the secrets and keys; then the S3 key
		// is rotated: the diff has the old and the new one.
		run("render", []string{"render", "--config", p, "--out", root}, build)
		s3Env(s3New)
		run("render --diff", []string{"render", "--config", p, "--out", root, "--diff"}, build)
		if !strings.Contains(all.String(), "secretkey") {
			t.Errorf("render --diff does not show the secretkey line changing:\n%s", all.String())
		}
		run("init --dry-run", initArgs(p, root, "--self-signed"), provInitWith(provSystem()))

		secrets := map[string]string{
			"the old S3 secret key": s3Old, "the new S3 secret key": s3New,
			"the database password": dbPassword, "the database password as the URL spells it": dbPasswordInURL,
			"the registry's HTTP secret": strings.TrimSpace(provRead(t, filepath.Join(root, render.RegistrySecretFile))),
		}
		keyLines(t, filepath.Join(root, render.KeysDir), secrets)
		leaks(t, "render and init --dry-run", all.String(), secrets)
	})

	t.Run("managed mongo", func(t *testing.T) {
		s3Env(s3Old)
		p := provExample(t, "")
		root := filepath.Join(t.TempDir(), "root")
		build, _ := provRenderWith()
		code, stdout, stderr := provCmd(t, initArgs(p, root), provInitWith(provSystem()))
		if code != 0 {
			t.Fatalf("init --dry-run on a fresh host: exit %d:\n%s", code, stderr)
		}
		fresh := stdout + stderr
		// What a fresh dry run generates is thrown away, so the test cannot
		// know it: no 64-digit hex string may show but hashes.
		binSum := sha256.Sum256([]byte("\x7fELF fake regctl"))
		for _, m := range regexp.MustCompile(`(?m)^.*\b[0-9a-f]{64}\b.*$`).FindAllString(fresh, -1) {
			if !strings.Contains(m, hex.EncodeToString(binSum[:])) && !manifestLine.MatchString(m) {
				t.Errorf("init --dry-run on a fresh host prints a generated secret: %q", m)
			}
		}

		code, stdout, stderr = provCmd(t, []string{"render", "--config", p, "--out", root}, build)
		if code != 0 {
			t.Fatalf("render: exit %d:\n%s", code, stderr)
		}
		out := fresh + stdout + stderr
		code, stdout, stderr = provCmd(t, initArgs(p, root), provInitWith(provSystem()))
		if code != 0 {
			t.Fatalf("init --dry-run: exit %d:\n%s", code, stderr)
		}
		out += stdout + stderr
		secrets := map[string]string{
			"the S3 secret key":          s3Old,
			"the MongoDB password":       strings.TrimSpace(provRead(t, filepath.Join(root, render.MongoPasswordFile))),
			"the registry's HTTP secret": strings.TrimSpace(provRead(t, filepath.Join(root, render.RegistrySecretFile))),
		}
		keyLines(t, filepath.Join(root, render.KeysDir), secrets)
		leaks(t, "render and init --dry-run", out, secrets)
	})

	// A failing command whose output and error quote the secrets: init's
	// error message shows neither.
	t.Run("failed command", func(t *testing.T) {
		s3Env(s3Old)
		t.Setenv("REGCTL_DATABASE_URL", dbURL)
		p := provExample(t, "")
		root := filepath.Join(t.TempDir(), "root")
		echo := "s3: SignatureDoesNotMatch for secret " + strconv.Quote(s3Old) + "; dial " + dbURL + ": refused"
		build := func(f *cmdutil.Factory) *cobra.Command {
			return NewCmdInit(f, func(ctx context.Context, o *InitOptions) error {
				o.System = provSystem()
				o.Env = provFakeEnv
				o.Host = func(root string) provision.Host { return provFailingRun{provision.NewExecHost(root, nil), echo} }
				return initRun(ctx, o)
			})
		}
		ios, in, out, errOut := cmdutil.Test()
		in.WriteString("admin-password\n")
		f := cmdutil.NewFactory(ios)
		root2 := cmdtest.Root(f, build(f))
		root2.SetArgs([]string{"init", "--config", p, "--root", root, "--password-stdin"})
		root2.SetIn(ios.In)
		root2.SetOut(ios.Out)
		root2.SetErr(ios.ErrOut)
		_, err := root2.ExecuteContextC(context.Background())
		if err == nil {
			t.Fatal("init succeeded with every command failing")
		}
		all := out.String() + errOut.String() + "error: " + err.Error()
		if !strings.Contains(all, "SignatureDoesNotMatch") {
			t.Fatalf("the command's output is not in the error:\n%s", all)
		}
		leaks(t, "a failed init", all, map[string]string{
			"the S3 secret key": s3Old, "the database password": dbPassword, "the database password as the URL spells it": dbPasswordInURL,
		})
	})
}
