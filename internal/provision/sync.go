package provision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/redact"
	"github.com/regctl/regctl/internal/render"
)

// Manifest records the SHA-256 of every file as render last wrote it, so
// that a file edited by hand since is noticed instead of overwritten.
type Manifest struct {
	Version int               `json:"version"`
	Files   map[string]string `json:"files"` // path below the root -> sha256 hex
}

// Kind is what Sync does with one file.
type Kind int

// The kinds of change.
const (
	Unchanged Kind = iota
	Create         // the file does not exist
	Update         // render wrote the file last; its content or mode changes
	Edited         // the file was edited by hand since render wrote it
)

func (k Kind) String() string {
	return [...]string{"unchanged", "create", "update", "edited by hand"}[k]
}

// Change is the plan for one rendered file or directory.
type Change struct {
	File      render.File
	Kind      Kind
	Old       []byte
	OldExists bool
	OldMode   fs.FileMode
	Chown     bool // the owner must change
}

// Plan is what Sync would do.
type Plan struct {
	Root     string
	Changes  []Change // every file, in render order
	manifest Manifest
	secrets  *redact.Set
}

// Pending returns the changes that write something.
func (p *Plan) Pending() []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.Kind != Unchanged || c.Chown {
			out = append(out, c)
		}
	}
	return out
}

// Edited returns the files edited by hand.
func (p *Plan) Edited() []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.Kind == Edited {
			out = append(out, c)
		}
	}
	return out
}

// Diff is the unified diff of c, with the plan's secrets masked.
func (p *Plan) Diff(c Change) string {
	if c.File.Dir {
		return ""
	}
	return Diff(path.Join(p.Root, c.File.Path), c.Old, c.OldExists, c.File.Data, p.secrets)
}

// Syncer writes rendered files below Root through Host.
type Syncer struct {
	Host Host
	Root string
	Out  io.Writer        // progress lines; nil for none
	Now  func() time.Time // names the backup directory
	// Indent starts each progress line; "  " when empty.
	Indent string
	// Secrets are masked in diffs. Plan adds the secrets it finds in the
	// files on disk (render.SecretsIn): an old version may hold values the
	// configuration no longer does.
	Secrets *redact.Set
}

func (s *Syncer) abs(rel string) string { return filepath.Join(s.Root, filepath.FromSlash(rel)) }

func (s *Syncer) indent() string {
	if s.Indent == "" {
		return "  "
	}
	return s.Indent
}

func (s *Syncer) printf(format string, args ...any) {
	if s.Out != nil {
		fmt.Fprintf(s.Out, format, args...)
	}
}

// Plan compares files with the disk and the manifest. It changes nothing.
func (s *Syncer) Plan(files []render.File) (*Plan, error) {
	m, err := s.readManifest()
	if err != nil {
		return nil, err
	}
	p := &Plan{Root: s.Root, manifest: m, secrets: s.Secrets}
	for _, f := range files {
		c := Change{File: f}
		fi, err := s.Host.Stat(s.abs(f.Path))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			c.Kind = Create
			c.Chown = f.UID >= 0
			p.Changes = append(p.Changes, c)
			continue
		case err != nil:
			return nil, fmt.Errorf("stat %s: %w", s.abs(f.Path), err)
		}
		c.OldExists, c.OldMode = true, fi.Mode().Perm()
		if f.UID >= 0 {
			uid, gid, ok := owner(fi)
			c.Chown = !ok || uid != f.UID || gid != f.GID
		}
		if f.Dir {
			switch {
			case !fi.IsDir():
				return nil, fmt.Errorf("%s: want a directory, found %s", s.abs(f.Path), fi.Mode().Type())
			case c.OldMode != f.Mode.Perm():
				c.Kind = Update
			}
			p.Changes = append(p.Changes, c)
			continue
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: want a regular file, found %s (regctl does not follow links below the root)", s.abs(f.Path), fi.Mode().Type())
		}
		if c.Old, err = s.Host.ReadFile(s.abs(f.Path)); err != nil {
			return nil, fmt.Errorf("read %s: %w", s.abs(f.Path), err)
		}
		s.Secrets.Add(render.SecretsIn(f.Path, c.Old)...)
		switch want, had := m.Files[f.Path], sum(c.Old); {
		case bytes.Equal(c.Old, f.Data):
			if c.OldMode != f.Mode.Perm() {
				c.Kind = Update
			}
		case f.Binary || want == had:
			c.Kind = Update
		default:
			c.Kind = Edited
		}
		p.Changes = append(p.Changes, c)
	}
	return p, nil
}

// ApplyOptions say what to do with files edited by hand.
type ApplyOptions struct {
	// Force overwrites edited files (a backup is kept).
	Force bool
	// Confirm, if set, is asked about each edited file (after its diff is
	// shown); false keeps the operator's version.
	Confirm func(c Change, diff string) (bool, error)
}

// ErrEdited means files were edited by hand and neither --force nor a
// confirmation allowed overwriting them.
var ErrEdited = errors.New("files were edited by hand since the last render")

// EditedError names the edited files.
type EditedError struct{ Paths []string }

func (e *EditedError) Error() string {
	return fmt.Sprintf("%v: %s (see them with --diff; keep your changes by moving them into regctl.yaml, or pass --force to overwrite, keeping a backup)",
		ErrEdited, strings.Join(e.Paths, ", "))
}

func (e *EditedError) Unwrap() error { return ErrEdited }

// Result tells what Apply wrote.
type Result struct {
	Written []string // paths below the root, created or updated
	Kept    []string // edited files the operator chose to keep
	Backups string   // the backup directory, if anything was replaced
}

// Apply carries out the plan: directories first, then files, each old
// version copied to a backup directory first, then the manifest. Edited
// files stop everything before the first write unless opts allow them.
func (s *Syncer) Apply(ctx context.Context, p *Plan, opts ApplyOptions) (_ *Result, err error) {
	res := &Result{}
	skip := map[string]bool{}
	var refused []string
	for _, c := range p.Edited() {
		switch {
		case opts.Force:
		case opts.Confirm != nil:
			ok, err := opts.Confirm(c, p.Diff(c))
			if err != nil {
				return nil, err
			}
			if !ok {
				skip[c.File.Path] = true
				res.Kept = append(res.Kept, c.File.Path)
			}
		default:
			refused = append(refused, path.Join(p.Root, c.File.Path))
		}
	}
	if len(refused) > 0 {
		return nil, &EditedError{Paths: refused}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if err := s.ensureDir(s.Root, render.ModeDir); err != nil {
		return nil, err
	}
	m := Manifest{Version: 1, Files: map[string]string{}}
	for k, v := range p.manifest.Files {
		m.Files[k] = v
	}
	stamp := time.Now
	if s.Now != nil {
		stamp = s.Now
	}
	backupDir := path.Join(render.BackupDir, stamp().UTC().Format("20060102T150405Z"))
	// A fault part way (a full disk, a read-only directory) leaves the
	// files written so far in their new version: record them, so that the
	// next render does not take them for hand edits. Best effort: on a
	// full disk this write fails too.
	defer func() {
		if err != nil && len(res.Written) > 0 && !manifestEqual(m, p.manifest) {
			_ = s.writeManifest(m)
		}
	}()

	for _, c := range p.Changes {
		f := c.File
		if skip[f.Path] {
			continue
		}
		if f.Dir {
			if c.Kind != Unchanged {
				if err := s.Host.Mkdir(s.abs(f.Path), f.Mode); err != nil {
					return res, err
				}
				s.printf("%s%-9s %s/ (mode %04o)\n", s.indent(), c.Kind, f.Path, f.Mode.Perm())
			}
		} else {
			if c.Kind != Unchanged {
				if err := s.ensureDir(s.abs(path.Dir(f.Path)), render.ModeDir); err != nil {
					return res, err
				}
				if c.OldExists && !bytes.Equal(c.Old, f.Data) {
					if err := s.backup(backupDir, f.Path, c.Old, c.OldMode); err != nil {
						return res, err
					}
					res.Backups = s.abs(backupDir)
				}
				if err := s.Host.WriteFile(s.abs(f.Path), f.Data, f.Mode); err != nil {
					return res, err
				}
				res.Written = append(res.Written, f.Path)
				s.printf("%s%-9s %s (mode %04o)\n", s.indent(), c.Kind, f.Path, f.Mode.Perm())
			}
			m.Files[f.Path] = sum(f.Data)
		}
		if c.Chown {
			if err := s.Host.Chown(s.abs(f.Path), f.UID, f.GID); err != nil {
				return res, err
			}
		}
	}
	if !manifestEqual(m, p.manifest) {
		if err := s.writeManifest(m); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (s *Syncer) ensureDir(dir string, mode fs.FileMode) error {
	ok, err := Exists(s.Host, dir)
	if err != nil || ok {
		return err
	}
	return s.Host.Mkdir(dir, mode)
}

func (s *Syncer) backup(dir, rel string, data []byte, mode fs.FileMode) error {
	if err := s.ensureDir(s.abs(render.StateDir), render.ModeSecretDir); err != nil {
		return err
	}
	dst := path.Join(dir, rel)
	if err := s.ensureDir(s.abs(render.BackupDir), render.ModeSecretDir); err != nil {
		return err
	}
	if err := s.Host.Mkdir(s.abs(path.Dir(dst)), render.ModeSecretDir); err != nil {
		return err
	}
	if mode == 0 {
		mode = render.ModeSecret
	}
	return s.Host.WriteFile(s.abs(dst), data, mode)
}

func (s *Syncer) readManifest() (Manifest, error) {
	m := Manifest{Version: 1, Files: map[string]string{}}
	b, err := s.Host.ReadFile(s.abs(render.ManifestFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, nil
	case err != nil:
		return m, fmt.Errorf("read manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w (remove it to treat every file as edited by hand)", s.abs(render.ManifestFile), err)
	}
	if m.Files == nil {
		m.Files = map[string]string{}
	}
	return m, nil
}

func (s *Syncer) writeManifest(m Manifest) error {
	if err := s.ensureDir(s.abs(render.StateDir), render.ModeSecretDir); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return s.Host.WriteFile(s.abs(render.ManifestFile), append(b, '\n'), render.ModeSecret)
}

func manifestEqual(a, b Manifest) bool {
	if len(a.Files) != len(b.Files) {
		return false
	}
	for k, v := range a.Files {
		if b.Files[k] != v {
			return false
		}
	}
	return true
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
