package store

import (
	"fmt"
	"regexp"
)

var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// ValidateUsername accepts 1–128 characters of letters, digits and
// ._@+- starting with a letter or digit: no ':' (it ends the name in HTTP
// Basic auth) and no glob metacharacters (names appear in rule patterns).
func ValidateUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return fmt.Errorf("invalid username %q: use 1-128 letters, digits and . _ @ + -, starting with a letter or digit", name)
	}
	return nil
}

// ValidateLabel checks a label key and value. Keys become document keys in
// MongoDB, so they may not contain '.' or start with '$'.
func ValidateLabel(key, value string) error {
	if !labelKeyRE.MatchString(key) {
		return fmt.Errorf("invalid label key %q: use 1-64 letters, digits, _ and -", key)
	}
	if value == "" || len(value) > 255 {
		return fmt.Errorf("invalid value for label %q: must be 1-255 characters", key)
	}
	return nil
}
