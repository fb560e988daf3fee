package sqlite

import "testing"

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // "" when not a SQLite URL
	}{
		// URL forms.
		{"sqlite:///var/lib/regctl/regctl.db", "/var/lib/regctl/regctl.db"},
		{"sqlite:data/regctl.db", "data/regctl.db"},
		{"sqlite:regctl.db", "regctl.db"},
		{"sqlite:/var/lib/regctl/regctl.db", "/var/lib/regctl/regctl.db"},
		{"sqlite://data/regctl.db", "data/regctl.db"},
		{"sqlite://regctl.db", "regctl.db"},
		{"sqlite:////var/lib/regctl.db", "/var/lib/regctl.db"},
		{"SQLite:///x/regctl", "/x/regctl"},
		{"sqlite3:///x/regctl.sqlite3", "/x/regctl.sqlite3"},
		{"sqlite:///my%20dir/regctl.db", "/my dir/regctl.db"},
		{"sqlite:///x/../y/./regctl.db", "/y/regctl.db"},
		{"sqlite:", ""},
		{"sqlite://", ""},
		{"sqlite:///x.db?mode=ro", ""},
		{"sqlite:///x.db#frag", ""},
		{"sqlite:///bad%zzescape.db", ""},
		{"sqlite:///nul%00.db", ""},
		// Bare paths.
		{"/var/lib/regctl/regctl.db", "/var/lib/regctl/regctl.db"},
		{"/var/lib/regctl/store", "/var/lib/regctl/store"},
		{"./regctl.db", "regctl.db"},
		{"data/regctl", "data/regctl"},
		{"regctl.db", "regctl.db"},
		{"regctl.DB", "regctl.DB"},
		{"regctl.sqlite", "regctl.sqlite"},
		{"my%20dir/regctl.db", "my%20dir/regctl.db"},
		{"regctl", ""},
		{"", ""},
		{":memory:", ""},
		// Other stores.
		{"mongodb://localhost:27017/regctl", ""},
		{"mongodb+srv://cluster.example.com/regctl", ""},
		{"file:///x/regctl.db", ""},
		{"postgres://x/y.db", ""},
	} {
		got, ok := ParseURL(c.in)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("ParseURL(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.want != "")
		}
	}
}
