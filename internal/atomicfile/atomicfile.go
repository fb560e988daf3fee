// Package atomicfile replaces files atomically: a reader sees the old or
// the new content, never a mix.
package atomicfile

import (
	"io/fs"

	"github.com/google/renameio/v2"
)

// Write replaces name with data through a temporary file in the same
// directory (fsynced, then renamed over name), with exactly mode:
// renameio's own WriteFile keeps the permissions of the file it replaces.
// opts go to renameio (WithRoot, say).
func Write(name string, data []byte, mode fs.FileMode, opts ...renameio.Option) error {
	t, err := renameio.NewPendingFile(name, append(opts, renameio.WithStaticPermissions(mode))...)
	if err != nil {
		return err
	}
	defer t.Cleanup()
	if _, err := t.Write(data); err != nil {
		return err
	}
	return t.CloseAtomicallyReplace()
}
