package token

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
	"github.com/regctl/regctl/internal/cli/cmdutil/cmdtest"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/token"
)

func TestTokenDecode(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	dir, other := filepath.Join(t.TempDir(), "k"), filepath.Join(t.TempDir(), "o")
	for _, d := range []string{dir, other} {
		if err := keys.Generate(d, keys.ES256, now); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := keys.Load(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	m, err := token.NewMinter(ks, "regctl", 5*time.Minute, config.KeyFormatX5C)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := m.Mint("waldi", "registry.test", []acl.Scope{{Type: "repository", Name: "test/app", Actions: []string{"pull"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (string, error) {
		ios, in, out, _ := cmdutil.Test()
		in.WriteString(stdin)
		f := cmdutil.NewFactory(ios)
		f.Now = func() time.Time { return now }
		err := cmdtest.RunCmd(NewCmdDecode(f, nil), ios, args...)
		return out.String(), err
	}

	out, err := run(`{"token":"`+tok+`","expires_in":300}`, "--keys", dir)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Header map[string]any `json:"header"`
		Claims map[string]any `json:"claims"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if got.Header["verified"] != true || got.Header["kid"] != ks.KeyID || got.Claims["sub"] != "waldi" || got.Claims["exp_time"] != "2026-11-29T12:05:00Z" {
		t.Errorf("decoded %s", out)
	}
	if x5c, _ := got.Header["x5c"].([]any); len(x5c) != 2 || x5c[1] != "regctl token CA" {
		t.Errorf("x5c %v", got.Header["x5c"])
	}
	if _, err := run("", tok, "--keys", other); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("foreign CA: %v", err)
	}
	if _, err := run("", "garbage"); err == nil || !strings.Contains(err.Error(), "not a signed JWT") {
		t.Errorf("garbage: %v", err)
	}
	if out, err := run(tok); err != nil || strings.Contains(out, "verified") {
		t.Errorf("unverified decode: %v %s", err, out)
	}
}
