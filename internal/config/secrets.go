package config

import (
	"net/url"
	"reflect"
	"strings"
)

// Secrets returns the secret values the configuration holds, for masking
// in what regctl prints. A field tagged `secret:"value"` is a secret.
// For a field tagged `secret:"url"`, the secret is the password in the
// URL (see URLPasswords). Empty values are left out.
func (c *Config) Secrets() []string {
	var out []string
	walk(reflect.ValueOf(*c), "", func(_ string, f reflect.StructField, v reflect.Value) {
		switch f.Tag.Get("secret") {
		case "value":
			if v.String() != "" {
				out = append(out, v.String())
			}
		case "url":
			out = append(out, URLPasswords(v.String())...)
		}
	})
	return out
}

// URLPasswords returns the password in the user information of the URL
// s: decoded, and as s spells it if that differs (percent-encoded, in
// whichever way its author chose). It returns nothing for a URL without a
// password or one that does not parse.
func URLPasswords(s string) []string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return nil
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return nil
	}
	out := []string{pw}
	// Cut s as url.Parse does: fragment, query, then the authority after
	// "//" up to the first '/', whose user information ends at the last
	// '@'.
	rest, _, _ := strings.Cut(s, "#")
	rest, _, _ = strings.Cut(rest, "?")
	if _, after, ok := strings.Cut(rest, "//"); ok {
		authority, _, _ := strings.Cut(after, "/")
		if i := strings.LastIndex(authority, "@"); i >= 0 {
			if _, raw, ok := strings.Cut(authority[:i], ":"); ok && raw != pw {
				out = append(out, raw)
			}
		}
	}
	return out
}
