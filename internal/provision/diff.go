package provision

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/regctl/regctl/internal/redact"
)

// Diff returns a unified diff from old to newData for the file path, with
// secrets masked in both before they are compared. A missing old file is
// /dev/null; binary contents are described by size and hash instead.
func Diff(path string, old []byte, oldExists bool, newData []byte, secrets *redact.Set) string {
	if !isText(old) || !isText(newData) {
		return fmt.Sprintf("binary %s: %s -> %s\n", path, describe(old, oldExists), describe(newData, true))
	}
	oldLabel := path
	if !oldExists {
		oldLabel = "/dev/null"
	}
	d := udiff.Unified(oldLabel, path, string(secrets.Bytes(old)), string(secrets.Bytes(newData)))
	if d == "" && !bytes.Equal(old, newData) {
		// Only secrets changed: show the lines they are on, masked (a
		// secret of several lines is masked line by line).
		d = secrets.String(udiff.Unified(oldLabel, path, string(old), string(newData)))
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
