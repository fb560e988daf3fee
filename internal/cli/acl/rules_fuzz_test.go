package acl

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/cli/cmdutil"
)

// FuzzDecodeRules drives `regctl acl import`'s parsing of a rules file
// (YAML or JSON) and rule patterns: decoding and compiling never panic, and
// a rule set that compiles survives `regctl acl export` in both formats
// unchanged and compiles again.
func FuzzDecodeRules(f *testing.F) {
	for _, s := range []string{
		"- seq: 10\n  match: {name: \"${labels:full-access}\"}\n  actions: [\"*\"]\n- seq: 20\n  match: {name: \"${labels:read-only-access}\"}\n  actions: [\"pull\"]\n",
		"- seq: 1\n  match: {account: \"/(admin|ci-.+)/\", type: repository, service: \"registry.*\"}\n  actions: [pull, push]\n  comment: admins\n",
		"- seq: 2\n  match: {ip: 10.0.0.0/8, labels: {team: \"${labels:team}/*\"}}\n  actions: []\n  expires_at: 2027-01-01T00:00:00Z\n",
		`[{"seq": 3, "match": {"name": "${account}/*"}, "actions": ["pull","delete"]}]`,
		"- seq: 4\n  match: {name: \"/(x?){1000}/\"}\n  actions: [pull]\n",
		"- seq: 5\n  match: {host: x}\n  actions: [pull]\n",
		"- seq: 6\n  match: {}\n",
		"- seq: 7\n  match: {name: \"[\"}\n  actions: [pull]\n- seq: 7\n  match: {}\n  actions: [pull]\n",
		"- seq: 8\n  match: {name: \"${labels:}\"}\n  actions: [\"pull\", \"fly\"]\n",
		"- seq: 9\n  match: {ip: \"::ffff:10.0.0.1/200\"}\n  actions: [\"*\"]\n",
		"seq: 1",
		"- &a {seq: 1, match: {}, actions: [pull]}\n- *a\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := acl.DecodeRules(data)
		if err != nil {
			return
		}
		if _, err := acl.Compile(rules); err != nil {
			return
		}
		for _, format := range []string{cmdutil.FormatYAML, cmdutil.FormatJSON} {
			var buf bytes.Buffer
			if err := cmdutil.WriteData(&buf, format, exportRules(rules)); err != nil {
				t.Fatalf("export %s: %v", format, err)
			}
			again, err := acl.DecodeRules(buf.Bytes())
			if err != nil {
				t.Fatalf("the %s export does not import: %v\n%s", format, err, buf.Bytes())
			}
			if !reflect.DeepEqual(canonRules(again), canonRules(rules)) {
				t.Fatalf("%s round trip changed the rules:\n%+v\n%+v\n%s", format, rules, again, buf.Bytes())
			}
			if _, err := acl.Compile(again); err != nil {
				t.Fatalf("re-imported rules do not compile: %v", err)
			}
		}
	})
}

// canonRules is exportRules with empty label maps as nil: "labels: {}" and
// no labels mean the same.
func canonRules(rules []acl.Rule) []acl.Rule {
	out := exportRules(rules)
	for i := range out {
		if len(out[i].Match.Labels) == 0 {
			out[i].Match.Labels = nil
		}
	}
	return out
}
