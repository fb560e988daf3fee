package provision

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	udiff "github.com/aymanbagabas/go-udiff"
)

// Masked replaces what the secrets are.
const Masked = "<redacted>"

// mask replaces every secret in b.
func mask(b []byte, secrets []string) []byte {
	for _, s := range secrets {
		if len(s) >= 4 {
			b = bytes.ReplaceAll(b, []byte(s), []byte(Masked))
		}
	}
	return b
}

// Diff returns a unified diff from old to new for the file path, with
// secrets masked. A missing old file is /dev/null; binary contents are
// described by size and hash instead.
func Diff(path string, old []byte, oldExists bool, new []byte, secrets []string) string {
	if !isText(old) || !isText(new) {
		return fmt.Sprintf("binary %s: %s -> %s\n", path, describe(old, oldExists), describe(new, true))
	}
	oldLabel := path
	if !oldExists {
		oldLabel = "/dev/null"
	}
	d := udiff.Unified(oldLabel, path, string(mask(old, secrets)), string(mask(new, secrets)))
	if d == "" && !bytes.Equal(old, new) {
		return fmt.Sprintf("--- %s\n+++ %s\n (a secret value changed)\n", oldLabel, path)
	}
	return d
}

func describe(b []byte, exists bool) string {
	if !exists {
		return "(none)"
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes, sha256 %s", len(b), hex.EncodeToString(sum[:8]))
}

func isText(b []byte) bool {
	return utf8.Valid(b) && !bytes.ContainsRune(b, 0)
}
