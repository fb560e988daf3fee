package sqlite

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// schemeRE matches a URL scheme and its colon (RFC 3986). A Windows drive
// letter would match too; regctl does not run on Windows.
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// ParseURL reports whether rawURL names a SQLite database and returns its file
// path (cleaned, relative paths relative to the working directory). It
// accepts:
//
//	sqlite:///abs/path/regctl.db   absolute path (recommended)
//	sqlite:relative/path/regctl.db relative path (recommended)
//	sqlite:/abs/path/regctl.db     absolute path
//	sqlite://relative/regctl.db    relative path: there is no host part,
//	                               everything after "//" is the path
//	/abs/path/regctl.db, ./regctl.db, data/regctl.db, regctl.db
//	                               a bare path: no scheme, and either a '/'
//	                               or a name ending in .db, .sqlite or
//	                               .sqlite3
//
// The scheme may also be spelled "sqlite3" and in any case. In the URL
// forms, %XX escapes are decoded ("my%20dir"); a bare path is taken
// literally. A query or fragment ('?' or '#' in a URL form) is not
// accepted, nor is an empty path or ":memory:". Anything else, mongodb://
// URLs included, is not a SQLite URL.
func ParseURL(rawURL string) (path string, ok bool) {
	if m := schemeRE.FindString(rawURL); m != "" {
		scheme := strings.ToLower(strings.TrimSuffix(m, ":"))
		if scheme != "sqlite" && scheme != "sqlite3" {
			return "", false
		}
		rest := strings.TrimPrefix(rawURL[len(m):], "//")
		if rest == "" || strings.ContainsAny(rest, "?#") {
			return "", false
		}
		p, err := url.PathUnescape(rest)
		if err != nil || p == "" || strings.IndexByte(p, 0) >= 0 {
			return "", false
		}
		return filepath.Clean(p), true
	}
	switch {
	case rawURL == "" || rawURL == ":memory:" || strings.IndexByte(rawURL, 0) >= 0:
		return "", false
	case strings.Contains(rawURL, "/"):
	default:
		ext := strings.ToLower(filepath.Ext(rawURL))
		if ext != ".db" && ext != ".sqlite" && ext != ".sqlite3" {
			return "", false
		}
	}
	return filepath.Clean(rawURL), true
}
