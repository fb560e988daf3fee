package cli

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/keys"
)

// faultCase is a corrupted input and the commands that read it: each must
// exit non-zero with an error naming the file, and never panic.
type faultCase struct {
	name    string
	file    string // the corrupted file, relative to the test directory
	corrupt func(t *testing.T, p string)
	want    string // also in the error, besides the file name
	lines   int    // lines the error may take (default 1)
}

func runFault(t *testing.T, dir string, tc faultCase, commands [][]string) {
	t.Helper()
	p := filepath.Join(dir, tc.file)
	tc.corrupt(t, p)
	for _, args := range commands {
		args := expand(args, dir)
		e := newEnv(t, cmdtest.OpenSQLite(t, func() time.Time { return fixedNow }))
		code := e.run("", args...)
		stderr := e.errOut.String()
		if code == cmdutil.ExitOK {
			t.Errorf("regctl %s with %s: exit 0, want an error\nstderr:\n%s", strings.Join(args, " "), tc.name, stderr)
			continue
		}
		if !strings.Contains(stderr, p) {
			t.Errorf("regctl %s: the error does not name %s:\n%s", strings.Join(args, " "), p, stderr)
		}
		if tc.want != "" && !strings.Contains(stderr, tc.want) {
			t.Errorf("regctl %s: the error lacks %q:\n%s", strings.Join(args, " "), tc.want, stderr)
		}
		// One line, plus cobra's usage hint for flag errors; a
		// configuration with several invalid values lists one per line.
		if tc.lines == 0 {
			tc.lines = 1
		}
		if n := strings.Count(strings.TrimSpace(stderr), "\n") + 1; n > tc.lines+1 {
			t.Errorf("regctl %s: %d lines of error:\n%s", strings.Join(args, " "), n, stderr)
		}
	}
}

// expand replaces DIR in args with dir.
func expand(args []string, dir string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "DIR", dir)
	}
	return out
}

// A corrupted regctl.yaml: every command that reads it says which file and
// what is wrong, and exits non-zero.
func TestCorruptRegctlYAML(t *testing.T) {
	tests := []faultCase{
		{name: "bad YAML", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "domains:\n  registry: [registry.test\n") }},
		{name: "tab indentation", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "domains:\n\tregistry: registry.test\n") }},
		{name: "unknown key", want: "unknown key(s) tls.cipher", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, strings.Replace(cmdtest.ValidRegctlYAML(), "  hsts-preload: false\n", "  hsts-preload: false\n  cipher: ALL\n", 1))
		}},
		{name: "wrong type", want: "'tls.hsts-max-age' cannot parse value as 'int'", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, strings.Replace(cmdtest.ValidRegctlYAML(), "hsts-max-age: 63072000", "hsts-max-age: forever", 1))
		}},
		{name: "list instead of map", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, strings.Replace(cmdtest.ValidRegctlYAML(), "domains:\n", "domains:\n  - x\n", 1))
		}},
		{name: "injected domain", want: "domains.registry", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, strings.Replace(cmdtest.ValidRegctlYAML(), "registry: registry.test", `registry: "a.example; include /etc/passwd"`, 1))
		}},
		{name: "binary garbage", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "\x00\xff\xfe{{{\x01") }},
		{name: "truncated", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, cmdtest.ValidRegctlYAML()[:len(cmdtest.ValidRegctlYAML())/3]+"\n  bad: [")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.file = "regctl.yaml"
			runFault(t, dir, tc, [][]string{
				{"render", "--config", "DIR/regctl.yaml", "--out", "DIR/out"},
				{"doctor", "--config", "DIR/regctl.yaml"},
				{"init", "--config", "DIR/regctl.yaml", "--dry-run"},
			})
			if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
				t.Error("render wrote files from a corrupt configuration")
			}
		})
	}
}

// A corrupted rules file for `regctl acl import`: refused as a whole,
// naming the file, and the store keeps its rules.
func TestCorruptRulesFile(t *testing.T) {
	tests := []faultCase{
		{name: "bad YAML", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "- seq: 10\n  match: {name: [\n") }},
		{name: "unknown match key", want: "allowed: account, type, name, service, ip, labels", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, "- seq: 10\n  match: {host: x}\n  actions: [pull]\n")
		}},
		{name: "unknown rule key", want: "allowed: seq, match, actions, comment, expires_at", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, "- seq: 10\n  match: {}\n  action: [pull]\n")
		}},
		{name: "wrong type", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "- seq: ten\n  match: {}\n  actions: [pull]\n") }},
		{name: "not a list", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "seq: 10\nactions: [pull]\n") }},
		{name: "missing actions", want: "seq 10", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "- seq: 10\n  match: {name: x}\n") }},
		{name: "bad regex", want: "seq 10", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, "- seq: 10\n  match: {name: \"/(unclosed/\"}\n  actions: [pull]\n")
		}},
		{name: "unknown variable", want: "seq 10", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, "- seq: 10\n  match: {name: \"${user}/*\"}\n  actions: [pull]\n")
		}},
		{name: "duplicate seq", want: "seq 10", corrupt: func(t *testing.T, p string) {
			cmdtest.WriteFile(t, p, "- seq: 10\n  match: {}\n  actions: [pull]\n- seq: 10\n  match: {}\n  actions: [push]\n")
		}},
		{name: "empty", want: "no rules found", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "") }},
		{name: "truncated JSON", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, `[{"seq": 10, "match": {"name": "x"}, "actio`) }},
		{name: "binary garbage", corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "\x00\x01\x02\xff") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.file = "rules.yaml"
			runFault(t, dir, tc, [][]string{
				{"acl", "import", "DIR/rules.yaml"},
				{"acl", "import", "DIR/rules.yaml", "--dry-run"},
			})
		})
	}
	// The store is untouched by a refused import.
	e := newEnv(t, cmdtest.OpenSQLite(t, func() time.Time { return fixedNow }))
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	cmdtest.WriteFile(t, good, "- seq: 10\n  match: {name: \"x/*\"}\n  actions: [pull]\n")
	e.must(cmdutil.ExitOK, "", "acl", "import", good)
	bad := filepath.Join(dir, "bad.yaml")
	cmdtest.WriteFile(t, bad, "- seq: 20\n  match: {name: \"/(/\"}\n  actions: [pull]\n")
	if code := e.run("", "acl", "import", bad); code == cmdutil.ExitOK {
		t.Fatal("a bad rules file was imported")
	}
	rules, err := e.St.ListRules(testCtx(t))
	if err != nil || len(rules) != 1 || rules[0].Seq != 10 {
		t.Errorf("rules after a refused import: %+v, %v", rules, err)
	}
}

// Corrupted keys: `regctl serve` (before it opens the store or listens) and
// `regctl keys rotate` name the file and exit non-zero.
func TestCorruptKeys(t *testing.T) {
	pemOf := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	truncate := func(t *testing.T, p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cmdtest.WriteFile(t, p, string(b[:len(b)/2]))
	}
	tests := []faultCase{
		{name: "truncated signing key", file: "keys/" + keys.SigningKeyFile, corrupt: truncate},
		{name: "truncated signing certificate", file: "keys/" + keys.SigningCrtFile, corrupt: truncate},
		{name: "truncated CA certificate", file: "keys/" + keys.CACertFile, corrupt: truncate},
		{name: "certificate in the key file", file: "keys/" + keys.SigningKeyFile, want: "unsupported PEM block",
			corrupt: func(t *testing.T, p string) {
				cmdtest.WriteFile(t, p, pemOf("CERTIFICATE", []byte{0x30, 0x03, 0x02, 0x01, 0x01}))
			}},
		{name: "key in the certificate file", file: "keys/" + keys.SigningCrtFile, want: `want "CERTIFICATE"`,
			corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, pemOf("PRIVATE KEY", []byte{1, 2, 3})) }},
		{name: "garbage in a PEM block", file: "keys/" + keys.SigningKeyFile,
			corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, pemOf("PRIVATE KEY", []byte("not DER at all"))) }},
		{name: "not PEM", file: "keys/" + keys.SigningCrtFile, want: "no PEM block",
			corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "hello\n") }},
		{name: "empty key", file: "keys/" + keys.SigningKeyFile, want: "no PEM block",
			corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "") }},
		{name: "readable key", file: "keys/" + keys.SigningKeyFile, want: "chmod 600",
			corrupt: func(_ *testing.T, p string) { os.Chmod(p, 0o644) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := keys.Generate(filepath.Join(dir, "keys"), keys.ES256, fixedNow); err != nil {
				t.Fatal(err)
			}
			runFault(t, dir, tc, [][]string{
				{"serve", "--keys", "DIR/keys", "--issuer", "regctl", "--service", "registry.test", "--listen", "127.0.0.1:0"},
				{"keys", "rotate", "--dir", "DIR/keys"},
			})
		})
	}
	// Files only serve reads.
	for _, tc := range []faultCase{
		{name: "short refresh secret", file: "keys/" + keys.RefreshKeyFile, want: "shorter than 32",
			corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, pemOf("REGCTL REFRESH KEY", []byte("short"))) }},
		{name: "corrupt previous certificate", file: "keys/" + keys.PrevSigningCrtFile, want: "no PEM block",
			corrupt: func(t *testing.T, p string) { cmdtest.WriteFile(t, p, "-----BEGIN CERTIFICATE-----\ntrunc") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := keys.Generate(filepath.Join(dir, "keys"), keys.ES256, fixedNow); err != nil {
				t.Fatal(err)
			}
			runFault(t, dir, tc, [][]string{
				{"serve", "--keys", "DIR/keys", "--issuer", "regctl", "--service", "registry.test", "--listen", "127.0.0.1:0"},
			})
		})
	}
}
