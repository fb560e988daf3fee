package acl

import "testing"

func TestCompileSharesRegexps(t *testing.T) {
	p := mustCompile(t, []Rule{
		{Seq: 1, Match: Match{Account: sp("/.+/"), Name: sp("/a[0-9]+/")}, Actions: []string{"pull"}},
		{Seq: 2, Match: Match{Account: sp("/.+/"), Name: sp("/b[0-9]+/")}, Actions: []string{"push"}},
		{Seq: 3, Match: Match{Labels: map[string]string{"team": "/.+/"}, Name: sp("/a[0-9]+/")}, Actions: []string{"*"}},
	})
	r := p.rules
	if r[0].account.re == nil || r[0].account.re != r[1].account.re || r[0].account.re != r[2].labels[0].pat.re {
		t.Error(`"/.+/" compiled more than once`)
	}
	if r[0].name.re != r[2].name.re {
		t.Error(`"/a[0-9]+/" compiled more than once`)
	}
	if r[0].name.re == r[1].name.re {
		t.Error("different regexps share a program")
	}
	sub := Subject{Account: "alice", Labels: map[string][]string{"team": {"x"}}}
	for _, tt := range []struct {
		scope string
		want  []string
	}{
		{"repository:a1:pull,push", []string{"pull"}},
		{"repository:b22:pull,push", []string{"push"}},
		{"repository:c3:pull,push", []string{}},
	} {
		got := p.Authorize(sub, "", []Scope{mustScope(t, tt.scope)}, now0)[0].Actions
		if len(got) != len(tt.want) || len(got) > 0 && got[0] != tt.want[0] {
			t.Errorf("%s: got %q, want %q", tt.scope, got, tt.want)
		}
	}
}
