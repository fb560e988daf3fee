package acl

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    Scope
		wantErr string // substring; "" means success
	}{
		{in: "repository:foo:pull", want: Scope{Type: "repository", Name: "foo", Actions: []string{"pull"}}},
		{in: "repository:foo/bar:push,pull", want: Scope{Type: "repository", Name: "foo/bar", Actions: []string{"pull", "push"}}},
		{in: "repository:samalba/my-app:pull,push,delete,*", want: Scope{Type: "repository", Name: "samalba/my-app", Actions: []string{"pull", "push", "delete", "*"}}},
		{in: "repository:a:*,delete,pull,pull", want: Scope{Type: "repository", Name: "a", Actions: []string{"pull", "delete", "*"}}},
		{in: "repository:localhost:5000/foo/bar:pull", want: Scope{Type: "repository", Name: "localhost:5000/foo/bar", Actions: []string{"pull"}}},
		{in: "repository:Registry.Example.com:443/team/app:pull", want: Scope{Type: "repository", Name: "Registry.Example.com:443/team/app", Actions: []string{"pull"}}},
		{in: "repository:[::1]:5000/foo:pull", want: Scope{Type: "repository", Name: "[::1]:5000/foo", Actions: []string{"pull"}}},
		{in: "repository:[2001:db8::1]/foo:pull", want: Scope{Type: "repository", Name: "[2001:db8::1]/foo", Actions: []string{"pull"}}},
		{in: "repository:example.com/foo:pull", want: Scope{Type: "repository", Name: "example.com/foo", Actions: []string{"pull"}}},
		{in: "repository(plugin):vieux/sshfs:pull", want: Scope{Type: "repository", Class: "plugin", Name: "vieux/sshfs", Actions: []string{"pull"}}},
		{in: "registry:catalog:*", want: Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		{in: "repository:a__b/c--d/e.f/g_h/0:pull", want: Scope{Type: "repository", Name: "a__b/c--d/e.f/g_h/0", Actions: []string{"pull"}}},
		{in: "repository:" + strings.Repeat("a", 255) + ":pull", want: Scope{Type: "repository", Name: strings.Repeat("a", 255), Actions: []string{"pull"}}},

		{in: "", wantErr: `scope "": want type:name:actions`},
		{in: "repository:foo", wantErr: "want type:name:actions"},
		{in: "repository:foo:", wantErr: `scope "repository:foo:": no actions`},
		{in: "repository:foo:pull,", wantErr: "empty action after trailing ','"},
		{in: "repository:foo:pull,,push", wantErr: "empty action in list"},
		{in: "repository:foo:fetch", wantErr: `unknown action "fetch" (allowed: pull, push, delete, *)`},
		{in: "repository:foo:PULL", wantErr: `unknown action "PULL"`},
		{in: ":foo:pull", wantErr: "resource type is empty"},
		{in: "image:foo:pull", wantErr: `unsupported resource type "image" (want repository or registry)`},
		{in: "repository(plugin:foo:pull", wantErr: "resource class must be written type(class)"},
		{in: "repository)x:foo:pull", wantErr: "resource class must be written type(class)"},
		{in: "repository():foo:pull", wantErr: `resource class "" must be lowercase letters and digits`},
		{in: "repository(Plugin):foo:pull", wantErr: `resource class "Plugin" must be lowercase`},
		{in: "registry:catalog:pull", wantErr: `registry scope allows only the action "*"`},
		{in: "registry:catalog:*,pull", wantErr: `registry scope allows only the action "*"`},
		{in: "registry:foo:*", wantErr: `registry scope name must be "catalog", got "foo"`},
		{in: "registry(plugin):catalog:*", wantErr: "registry scopes take no resource class"},
		{in: "repository::pull", wantErr: "repository name is empty"},
		{in: "repository:Foo:pull", wantErr: `path component "Foo" has an uppercase letter`},
		{in: "repository:foo/Bar:pull", wantErr: `path component "Bar" has an uppercase letter`},
		{in: "repository:/foo:pull", wantErr: "empty path component"},
		{in: "repository:foo/:pull", wantErr: "empty path component"},
		{in: "repository:foo//bar:pull", wantErr: "empty path component"},
		{in: "repository:-foo:pull", wantErr: `path component "-foo" must start and end with a lowercase letter or digit`},
		{in: "repository:foo.:pull", wantErr: "must start and end with a lowercase letter or digit"},
		{in: "repository:a..b:pull", wantErr: `path component "a..b" has invalid separator ".."`},
		{in: "repository:a___b:pull", wantErr: `invalid separator "___"`},
		{in: "repository:a.-b:pull", wantErr: `invalid separator ".-"`},
		{in: "repository:a b:pull", wantErr: `path component "a b" has invalid character ' '`},
		{in: "repository:a*:pull", wantErr: `has invalid character '*'`},
		{in: "repository:localhost:5000:pull", wantErr: `path component "localhost:5000" has invalid character ':'`},
		{in: "repository:localhost:50x0/foo:pull", wantErr: `registry host "localhost:50x0": port "50x0" is not a number`},
		{in: "repository:localhost:/foo:pull", wantErr: `registry host "localhost:": empty port`},
		{in: "repository:-bad.com:80/foo:pull", wantErr: `host label "-bad" starts or ends with '-'`},
		{in: "repository:[zz]/foo:pull", wantErr: `registry host "[zz]": invalid IPv6 address`},
		{in: "repository:[::1/foo:pull", wantErr: `unterminated '['`},
		{in: "repository:" + strings.Repeat("a", 256) + ":pull", wantErr: "repository name is 256 characters long (max 255)"},
		{in: "repository:" + strings.Repeat("a/", 600) + "a:pull", wantErr: "longer than 1024 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseScope(%q) = %+v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseScope(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "scope ") {
					t.Errorf("error %q does not start with \"scope \"", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []Scope
		wantErr string
	}{
		{name: "none", in: nil, want: []Scope{}},
		{name: "blank values", in: []string{"", "   "}, want: []Scope{}},
		{
			name: "one value several scopes",
			in:   []string{"repository:a:pull repository:b:push"},
			want: []Scope{
				{Type: "repository", Name: "a", Actions: []string{"pull"}},
				{Type: "repository", Name: "b", Actions: []string{"push"}},
			},
		},
		{
			name: "merged across values in first-seen order",
			in:   []string{"repository:b:push registry:catalog:*", "repository:a:pull", "repository:b:pull,delete"},
			want: []Scope{
				{Type: "repository", Name: "b", Actions: []string{"pull", "push", "delete"}},
				{Type: "registry", Name: "catalog", Actions: []string{"*"}},
				{Type: "repository", Name: "a", Actions: []string{"pull"}},
			},
		},
		{
			name: "class kept from first that has one",
			in:   []string{"repository:p:pull repository(plugin):p:push repository(other):p:delete"},
			want: []Scope{{Type: "repository", Class: "plugin", Name: "p", Actions: []string{"pull", "push", "delete"}}},
		},
		{
			name: "host port names",
			in:   []string{"repository:localhost:5000/foo/bar:pull repository:localhost:5000/foo/bar:push"},
			want: []Scope{{Type: "repository", Name: "localhost:5000/foo/bar", Actions: []string{"pull", "push"}}},
		},
		{name: "bad scope", in: []string{"repository:a:pull repository:B:pull"}, wantErr: `scope "repository:B:pull": path component "B" has an uppercase letter`},
		{name: "64 is fine", in: []string{strings.Repeat("repository:a:pull ", 64)}, want: []Scope{{Type: "repository", Name: "a", Actions: []string{"pull"}}}},
		{name: "65 is too many", in: []string{strings.Repeat("repository:a:pull ", 65)}, wantErr: "more than 64 scopes requested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScopes(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr && !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseScopes error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScopes: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseScopes = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestScopeString(t *testing.T) {
	tests := []struct {
		in   Scope
		want string
	}{
		{Scope{Type: "repository", Name: "foo/bar", Actions: []string{"pull", "push"}}, "repository:foo/bar:pull,push"},
		{Scope{Type: "repository", Class: "plugin", Name: "a", Actions: []string{"pull"}}, "repository(plugin):a:pull"},
		{Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}, "registry:catalog:*"},
		{Scope{Type: "repository", Name: "localhost:5000/a", Actions: []string{}}, "repository:localhost:5000/a:"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		name               string
		requested, allowed []string
		want               []string
	}{
		{"star allows all", []string{"push", "pull"}, []string{"*"}, []string{"push", "pull"}},
		{"star allows requested star", []string{"*"}, []string{"*"}, []string{"*"}},
		// As in docker_auth, only actions that are exactly ["*"] allow
		// everything: "*" among others is compared literally.
		{"star among others is literal", []string{"pull", "push", "delete"}, []string{"pull", "*"}, []string{"pull"}},
		{"star among others allows requested star", []string{"*"}, []string{"pull", "*"}, []string{"*"}},
		{"star among others allows only what it lists", []string{"push"}, []string{"pull", "*"}, []string{}},
		{"star first among others", []string{"push", "delete", "*"}, []string{"*", "delete"}, []string{"delete", "*"}},
		{"star twice is not exactly star", []string{"pull", "*"}, []string{"*", "*"}, []string{"*"}},
		{"literal", []string{"pull", "push", "delete"}, []string{"delete", "pull"}, []string{"pull", "delete"}},
		{"requested star needs allowed star", []string{"*"}, []string{"pull", "push", "delete"}, []string{}},
		{"none", []string{"push"}, []string{"pull"}, []string{}},
		{"nil allowed", []string{"push"}, nil, []string{}},
		{"nil requested", nil, []string{"*"}, []string{}},
		{"duplicates dropped", []string{"pull", "pull"}, []string{"pull"}, []string{"pull"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Intersect(tt.requested, tt.allowed)
			if got == nil {
				t.Fatal("Intersect returned nil")
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Intersect(%q, %q) = %q, want %q", tt.requested, tt.allowed, got, tt.want)
			}
		})
	}
}

func TestAllowsAllMixesAll(t *testing.T) {
	tests := []struct {
		actions       []string
		allows, mixes bool
	}{
		{[]string{"*"}, true, false},
		{[]string{"pull", "*"}, false, true},
		{[]string{"*", "*"}, false, true},
		{[]string{"pull", "push"}, false, false},
		{[]string{}, false, false},
		{nil, false, false},
	}
	for _, tt := range tests {
		if got := AllowsAll(tt.actions); got != tt.allows {
			t.Errorf("AllowsAll(%q) = %v, want %v", tt.actions, got, tt.allows)
		}
		if got := MixesAll(tt.actions); got != tt.mixes {
			t.Errorf("MixesAll(%q) = %v, want %v", tt.actions, got, tt.mixes)
		}
	}
}
