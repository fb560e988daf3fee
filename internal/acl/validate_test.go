package acl

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name    string
		rule    Rule
		wantErr []string // substrings; nil means valid
	}{
		{name: "minimal allow", rule: Rule{Seq: 1, Actions: []string{"*"}}},
		{name: "explicit deny", rule: Rule{Seq: 1, Actions: []string{}}},
		{name: "all fields", rule: Rule{Seq: 1, Match: Match{
			Account: sp("/.+/"), Type: sp("repository"), Name: sp("${account}/*"), Service: sp("reg"),
			IP: sp("10.0.0.0/8"), Labels: map[string]string{"team": "${labels:team}"},
		}, Actions: []string{"pull", "push", "delete"}}},
		{name: "empty pattern ok", rule: Rule{Seq: 1, Match: Match{Account: sp("")}, Actions: []string{"pull"}}},
		{name: "slash and double slash are globs", rule: Rule{Seq: 1, Match: Match{Name: sp("//"), Account: sp("/")}, Actions: []string{"pull"}}},
		{name: "templated regex", rule: Rule{Seq: 1, Match: Match{Name: sp(`/${account}\/${labels:x}-.+/`)}, Actions: []string{"pull"}}},
		{name: "ipv6", rule: Rule{Seq: 1, Match: Match{IP: sp("2001:db8::/32")}, Actions: []string{"pull"}}},
		{name: "single ip", rule: Rule{Seq: 1, Match: Match{IP: sp("192.168.1.1")}, Actions: []string{"pull"}}},

		{name: "nil actions", rule: Rule{Seq: 7}, wantErr: []string{"rule seq 7: actions missing (use [] for an explicit deny)"}},
		{name: "unknown action", rule: Rule{Seq: 8, Actions: []string{"pull", "write"}}, wantErr: []string{`rule seq 8: unknown action "write" (allowed: pull, push, delete, *)`}},
		{name: "bad regex", rule: Rule{Seq: 9, Match: Match{Name: sp("/a(b/")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 9: match.name: invalid regular expression /a(b/: error parsing regexp: missing closing )`}},
		{name: "regex cannot escape anchoring", rule: Rule{Seq: 9, Match: Match{Name: sp("/a)|(b/")}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 9: match.name: invalid regular expression"}},
		{name: "bad templated regex", rule: Rule{Seq: 9, Match: Match{Name: sp(`/\${account}/`)}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 9: match.name: invalid regular expression"}},
		{name: "bad glob", rule: Rule{Seq: 10, Match: Match{Account: sp("[a")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 10: match.account: malformed glob "[a": syntax error in pattern`}},
		{name: "bad templated glob", rule: Rule{Seq: 10, Match: Match{Name: sp("${account}/[")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 10: match.name: malformed glob`}},
		{name: "bad ip", rule: Rule{Seq: 11, Match: Match{IP: sp("10.0.0.300")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 11: match.ip: "10.0.0.300" is neither an IP address nor a CIDR prefix`}},
		{name: "bad cidr", rule: Rule{Seq: 11, Match: Match{IP: sp("10.0.0.0/33")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 11: match.ip: "10.0.0.0/33" is not a valid CIDR prefix`}},
		{name: "empty ip", rule: Rule{Seq: 11, Match: Match{IP: sp("")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 11: match.ip: "" is neither`}},
		{name: "ip zone", rule: Rule{Seq: 11, Match: Match{IP: sp("fe80::1%eth0")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 11: match.ip: "fe80::1%eth0": IP zones are not supported`}},
		{name: "ip variable", rule: Rule{Seq: 11, Match: Match{IP: sp("${account}")}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 11: match.ip: "${account}": variables are not supported in ip`}},
		{name: "unknown variable", rule: Rule{Seq: 12, Match: Match{Name: sp("${foo}/*")}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 12: match.name: unknown variable ${foo} (allowed: ${account}, ${name}, ${type}, ${service}, ${labels:KEY})"}},
		{name: "empty label variable", rule: Rule{Seq: 13, Match: Match{Name: sp("${labels:}")}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 13: match.name: variable ${labels:} names no label"}},
		{name: "unterminated variable", rule: Rule{Seq: 14, Match: Match{Service: sp("${account")}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 14: match.service: unterminated variable (missing '}')"}},
		{name: "nested variable", rule: Rule{Seq: 14, Match: Match{Name: sp("${labels:${x}")}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 14: match.name: variable ${labels:${x}: label name must not contain"}},
		{name: "label pattern", rule: Rule{Seq: 15, Match: Match{Labels: map[string]string{"team": "${bogus}"}}, Actions: []string{"pull"}}, wantErr: []string{`rule seq 15: match.labels["team"]: unknown variable ${bogus}`}},
		{name: "empty label key", rule: Rule{Seq: 16, Match: Match{Labels: map[string]string{"": "x"}}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 16: match.labels: empty label name"}},
		{name: "pattern too long", rule: Rule{Seq: 17, Match: Match{Type: sp(strings.Repeat("a", MaxPatternLength+1))}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 17: match.type: pattern is 4097 characters long (max 4096)"}},
		{name: "regex too complex", rule: Rule{Seq: 18, Match: Match{Name: sp("/(x?){1000}(y?){1000}/")}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 18: match.name: invalid regular expression /(x?){1000}(y?){1000}/: too complex: compiles to"}},
		{name: "templated regex too complex", rule: Rule{Seq: 18, Match: Match{Name: sp("/(${account}?){1000}(y?){1000}/")}, Actions: []string{"pull"}}, wantErr: []string{"rule seq 18: match.name: invalid regular expression", "too complex"}},
		{name: "several problems", rule: Rule{Seq: -3, Match: Match{Account: sp("["), Name: sp("/(/")}},
			wantErr: []string{"rule seq -3: actions missing", "rule seq -3: match.account: malformed glob", "rule seq -3: match.name: invalid regular expression"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q does not contain %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "rule seq ") {
					t.Errorf("error line %q does not name the seq", line)
				}
			}
			if _, cerr := Compile([]Rule{tt.rule}); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Compile error %v, want the Validate error %v", cerr, err)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile([]Rule{
		{Seq: 1, Actions: []string{"pull"}},
		{Seq: 2},
		{Seq: 1, Actions: []string{"pull"}},
		{Seq: 3, Match: Match{Name: sp("/(/")}, Actions: []string{"pull"}},
	})
	if err == nil {
		t.Fatal("Compile accepted invalid rules")
	}
	want := "rule seq 2: actions missing (use [] for an explicit deny)\n" +
		"rule seq 1: duplicate seq\n" +
		"rule seq 3: match.name: invalid regular expression /(/: error parsing regexp: missing closing ): `(`"
	if err.Error() != want {
		t.Fatalf("Compile error:\n%s\nwant:\n%s", err, want)
	}
	p, err := Compile(nil)
	if err != nil || p.Len() != 0 {
		t.Fatalf("Compile(nil) = %v, %v", p, err)
	}
}

func TestValidateGrantPattern(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: "team/*"},
		{in: "team/app"},
		{in: "*"},
		{in: "*/*"},
		{in: "localhost:5000/team/*"},
		{in: "app-[0-9]?"},
		{in: "a_b.c-d"},
		{in: "", wantErr: "grant pattern is empty"},
		{in: "Team/*", wantErr: `grant pattern "Team/*": uppercase letters never match a repository name`},
		{in: "/team", wantErr: `grant pattern "/team": leading '/' never matches a repository name`},
		{in: "team/", wantErr: `grant pattern "team/": trailing '/' never matches a repository name`},
		{in: "a//b", wantErr: `grant pattern "a//b": "//" never matches a repository name`},
		{in: "a b", wantErr: `grant pattern "a b": invalid character ' '`},
		{in: `a\*`, wantErr: `grant pattern "a\\*": invalid character '\\'`},
		{in: "a[^b]", wantErr: `invalid character '^'`},
		{in: "a[b", wantErr: `grant pattern "a[b": malformed glob: syntax error in pattern`},
		{in: "a[]", wantErr: "malformed glob"},
		{in: strings.Repeat("a", MaxScopeLength+1), wantErr: "longer than 1024 characters"},
		{in: "*[" + strings.Repeat("a-b", 300) + "]x", wantErr: `grant pattern "*[a-ba-b`},
		{in: "*/" + strings.Repeat("x", 40) + "*"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := ValidateGrantPattern(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateGrantPattern(%q): %v", tt.in, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateGrantPattern(%q) = %v, want %q", tt.in, err, tt.wantErr)
			}
		})
	}
	if err := ValidateGrantPattern("a[b"); !errors.Is(err, path.ErrBadPattern) {
		t.Errorf("malformed glob error does not wrap path.ErrBadPattern: %v", err)
	}
}

func TestGrantValidate(t *testing.T) {
	tests := []struct {
		name    string
		g       Grant
		wantErr string
	}{
		{name: "ok", g: Grant{Pattern: "a/*", Actions: []string{"pull", "push"}}},
		{name: "star", g: Grant{Pattern: "a", Actions: []string{"*"}}},
		{name: "no actions", g: Grant{Pattern: "a"}, wantErr: `grant "a": no actions`},
		{name: "empty actions", g: Grant{Pattern: "a", Actions: []string{}}, wantErr: `grant "a": no actions`},
		{name: "unknown action", g: Grant{Pattern: "a", Actions: []string{"pull", "own"}}, wantErr: `grant "a": unknown action "own" (allowed: pull, push, delete, *)`},
		{name: "bad pattern", g: Grant{Pattern: "A", Actions: []string{"pull"}}, wantErr: `grant pattern "A": uppercase`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr && !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateMatchKeys(t *testing.T) {
	tests := []struct {
		keys    []string
		wantErr string
	}{
		{keys: nil},
		{keys: []string{"account", "type", "name", "service", "ip", "labels"}},
		{keys: []string{"account", "acount"}, wantErr: `unknown match key "acount" (allowed: account, type, name, service, ip, labels)`},
		{keys: []string{"x", "name", "y", "x"}, wantErr: `unknown match keys "x", "y" (allowed: account, type, name, service, ip, labels)`},
		{keys: []string{"Account"}, wantErr: `unknown match key "Account"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, ","), func(t *testing.T) {
			err := ValidateMatchKeys(tt.keys)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateMatchKeys: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateMatchKeys = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
