package dockerauth

import (
	"slices"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/acl"
)

const hash = "$2y$10$W50MKqZGAMLcTMs7yTOd1uI3vAm1TaDeVwiBs96gAfiBqK/mkIrDy"

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
server: {addr: ":5001"}
token: {issuer: "Acme", expiration: 900}
users:
  "admin": {password: "` + hash + `"}
  "test": {password: "` + hash + `", labels: {full-access: ["test/*"], empty: []}}
  "": {}
  "broken": {password: "plaintext"}
acl:
  - match: {account: "admin"}
    actions: ["*"]
    comment: "admin"
  - match: {account: "/ci-.+/", labels: {team: "/^ops$/"}}
    actions: ["pull", "*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Users) != 2 || c.Users[0].Username != "admin" || c.Users[1].Username != "test" || len(c.Users[1].Labels) != 1 {
		t.Errorf("users %+v", c.Users)
	}
	if !c.HasACL || len(c.Rules) != 2 || c.Rules[0].Seq != 10 || c.Rules[1].Seq != 20 || c.Rules[0].Comment != "admin" {
		t.Errorf("rules %+v", c.Rules)
	}
	if got := *c.Rules[1].Match.Account; got != "/.*(?:ci-.+).*/" {
		t.Errorf("unanchored account %q", got)
	}
	if got := c.Rules[1].Match.Labels["team"]; got != "/^ops$/" {
		t.Errorf("anchored label %q", got)
	}
	if _, err := acl.Compile(c.Rules); err != nil {
		t.Errorf("the rules do not compile: %v", err)
	}
	wantNotes := []string{
		"Not carried over: server: run regctl serve --listen HOST:PORT behind the TLS reverse proxy instead (docker_auth listened on :5001)",
		`Not carried over: token: pass regctl serve --issuer "Acme" --token-lifetime 900s; signing keys come from regctl keys generate (the registry's rootcertbundle changes)`,
		`Not carried over: user "" (anonymous access)`,
		"Not carried over: user broken: password: not a bcrypt hash",
		"Rewritten: acl entry 2 (seq 20): match.account /ci-.+/ to /.*(?:ci-.+).*/",
	}
	for _, w := range wantNotes {
		if !slices.ContainsFunc(c.Notes, func(n string) bool { return strings.HasPrefix(n, w) }) {
			t.Errorf("no note %q in\n%s", w, strings.Join(c.Notes, "\n"))
		}
	}
	if len(c.Checks) != 1 || !strings.HasPrefix(c.Checks[0], "Note: acl entry 2 (seq 20): actions pull,*") {
		t.Errorf("checks %q", c.Checks)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"- a\n", "not a docker_auth config: want a YAML mapping"},
		{"foo: 1\n", ""}, // an unknown section is a note
		{"users: [\n", "yaml:"},
		{"acl:\n  - match: {team: dev}\n    actions: [pull]\n", "acl entry 1 (seq 10): match.team is not supported by regctl"},
		{"acl:\n  - match: {name: x}\n", "acl entry 1 (seq 10): no actions"},
		{"acl: {}\n", "acl: want a list"},
	} {
		_, err := Parse([]byte(tc.in))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParse: parsing never panics, and the rules of a config that parses
// are valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte("users:\n  a: {password: \"" + hash + "\"}\nacl:\n  - match: {account: /x/}\n    actions: [pull]\n"))
	f.Add([]byte("acl:\n  - match: {labels: {a: \"${labels:b}\"}}\n    actions: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		for _, r := range c.Rules {
			if err := r.Validate(); err != nil {
				t.Fatalf("rule %+v: %v", r, err)
			}
		}
	})
}
