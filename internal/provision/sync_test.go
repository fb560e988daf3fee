package provision

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/redact"
	"github.com/regctl/regctl/internal/render"
)

func testFiles(nginx string) []render.File {
	return []render.File{
		{Path: "nginx", Dir: true, Mode: 0o755, UID: -1, GID: -1},
		{Path: "registry", Dir: true, Mode: 0o700, UID: -1, GID: -1},
		{Path: "nginx/nginx.conf", Data: []byte(nginx), Mode: 0o644, UID: -1, GID: -1},
		{Path: "registry/config.yml", Data: []byte("secret: s3cr3t-value\n"), Mode: 0o600, UID: -1, GID: -1},
		{Path: "compose.yaml", Data: []byte("name: regctl\n"), Mode: 0o644, UID: -1, GID: -1},
	}
}

var fixedNow = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func newSyncer(t *testing.T) (*Syncer, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	secrets := &redact.Set{}
	secrets.Add("s3cr3t-value")
	return &Syncer{Host: NewExecHost(root, nil), Root: root, Now: fixedNow, Secrets: secrets}, root
}

func apply(t *testing.T, s *Syncer, files []render.File, o ApplyOptions) (*Plan, *Result, error) {
	t.Helper()
	p, err := s.Plan(files)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(context.Background(), p, o)
	return p, res, err
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSyncCreatesThenNothing(t *testing.T) {
	s, root := newSyncer(t)
	p, res, err := apply(t, s, testFiles("v1\n"), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Written) != 3 || len(p.Pending()) != 5 {
		t.Errorf("first sync wrote %v, pending %d", res.Written, len(p.Pending()))
	}
	if m := mode(t, filepath.Join(root, "registry")); m != 0o700 {
		t.Errorf("registry/ mode %04o", m)
	}
	if m := mode(t, filepath.Join(root, "registry/config.yml")); m != 0o600 {
		t.Errorf("config.yml mode %04o", m)
	}
	if m := mode(t, filepath.Join(root, render.ManifestFile)); m != 0o600 {
		t.Errorf("manifest mode %04o", m)
	}
	fi, _ := os.Stat(filepath.Join(root, "nginx/nginx.conf"))
	p, res, err = apply(t, s, testFiles("v1\n"), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pending()) != 0 || len(res.Written) != 0 {
		t.Errorf("second sync: pending %d, wrote %v", len(p.Pending()), res.Written)
	}
	if fi2, _ := os.Stat(filepath.Join(root, "nginx/nginx.conf")); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("an unchanged file was rewritten")
	}
}

func TestSyncUpdateKeepsBackup(t *testing.T) {
	s, root := newSyncer(t)
	if _, _, err := apply(t, s, testFiles("v1\n"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	p, res, err := apply(t, s, testFiles("v2\n"), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pending()) != 1 || p.Pending()[0].Kind != Update {
		t.Fatalf("pending %+v", p.Pending())
	}
	if got, _ := os.ReadFile(filepath.Join(root, "nginx/nginx.conf")); string(got) != "v2\n" {
		t.Errorf("nginx.conf = %q", got)
	}
	backup := filepath.Join(root, render.BackupDir, "20260102T030405Z", "nginx/nginx.conf")
	if got, err := os.ReadFile(backup); err != nil || string(got) != "v1\n" {
		t.Errorf("backup %s = %q, %v", backup, got, err)
	}
	if res.Backups != filepath.Join(root, render.BackupDir, "20260102T030405Z") {
		t.Errorf("Backups = %s", res.Backups)
	}
	if m := mode(t, filepath.Join(root, render.BackupDir)); m != 0o700 {
		t.Errorf("backup dir mode %04o", m)
	}
}

func TestSyncRefusesHandEdits(t *testing.T) {
	s, root := newSyncer(t)
	if _, _, err := apply(t, s, testFiles("v1\n"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "nginx/nginx.conf")
	if err := os.WriteFile(conf, []byte("v1\n# my tweak\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	p, _, err := apply(t, s, testFiles("v2\n"), ApplyOptions{})
	var ee *EditedError
	if !errors.As(err, &ee) || !errors.Is(err, ErrEdited) || len(ee.Paths) != 1 || ee.Paths[0] != conf {
		t.Fatalf("err = %v, want an EditedError naming %s", err, conf)
	}
	if d := p.Diff(p.Edited()[0]); !strings.Contains(d, "-# my tweak") || !strings.Contains(d, "+v2") {
		t.Errorf("diff of the edited file:\n%s", d)
	}
	if got, _ := os.ReadFile(conf); string(got) != "v1\n# my tweak\n" {
		t.Error("the edited file was overwritten")
	}

	// Declined on a terminal: kept, the rest applied.
	_, res, err := apply(t, s, testFiles("v2\n"), ApplyOptions{Confirm: func(Change, string) (bool, error) { return false, nil }})
	if err != nil || len(res.Kept) != 1 {
		t.Fatalf("declined: %v, kept %v", err, res.Kept)
	}
	if got, _ := os.ReadFile(conf); string(got) != "v1\n# my tweak\n" {
		t.Error("a declined file was overwritten")
	}

	// --force: overwritten, with a backup.
	if _, _, err := apply(t, s, testFiles("v2\n"), ApplyOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(conf); string(got) != "v2\n" {
		t.Errorf("forced: %q", got)
	}
	backup := filepath.Join(root, render.BackupDir, "20260102T030405Z", "nginx/nginx.conf")
	if got, _ := os.ReadFile(backup); string(got) != "v1\n# my tweak\n" {
		t.Errorf("backup of the edited file = %q", got)
	}
}

func TestSyncExistingFileWithoutManifestIsEdited(t *testing.T) {
	s, root := newSyncer(t)
	writeTestFile(t, filepath.Join(root, "compose.yaml"), "mine\n", 0o644)
	p, err := s.Plan(testFiles("v1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := p.Edited(); len(e) != 1 || e[0].File.Path != "compose.yaml" {
		t.Errorf("edited = %+v", e)
	}
}

func TestSyncFixesModes(t *testing.T) {
	s, root := newSyncer(t)
	if _, _, err := apply(t, s, testFiles("v1\n"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(root, "registry/config.yml"), 0o644)
	os.Chmod(filepath.Join(root, "registry"), 0o755)
	p, _, err := apply(t, s, testFiles("v1\n"), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pending()) != 2 {
		t.Errorf("pending %+v", p.Pending())
	}
	if m := mode(t, filepath.Join(root, "registry/config.yml")); m != 0o600 {
		t.Errorf("mode %04o after sync", m)
	}
	if m := mode(t, filepath.Join(root, "registry")); m != 0o700 {
		t.Errorf("dir mode %04o after sync", m)
	}
}

func TestDiffMasksSecrets(t *testing.T) {
	s, _ := newSyncer(t)
	p, err := s.Plan(testFiles("v1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Pending() {
		if d := p.Diff(c); strings.Contains(d, "s3cr3t-value") {
			t.Errorf("diff shows a secret:\n%s", d)
		}
	}
}

// TestDiffMasksSecretsOfOldFiles: the files on disk may hold secrets the
// configuration no longer does (an S3 key or a database password just
// rotated); the diff that replaces them masks both the old and the new.
func TestDiffMasksSecretsOfOldFiles(t *testing.T) {
	s, root := newSyncer(t)
	s.Secrets.Add("new-s3-secret", "new-db-pw")
	writeTestFile(t, filepath.Join(root, render.RegistryConfFile),
		"http:\n  secret: \"old-http-secret\"\nstorage:\n  s3:\n    secretkey: \"old-s3\\u0026secret\"\n", 0o600)
	writeTestFile(t, filepath.Join(root, render.TokenConfFile), "store: \"mongodb://u:old%2Fdb-pw@db/regctl\"\n", 0o600)
	files := []render.File{
		{Path: render.RegistryConfFile, Data: []byte("http:\n  secret: \"old-http-secret\"\nstorage:\n  s3:\n    secretkey: \"new-s3-secret\"\n"), Mode: 0o600, UID: -1, GID: -1},
		{Path: render.TokenConfFile, Data: []byte("store: \"mongodb://u:new-db-pw@db/regctl\"\n"), Mode: 0o600, UID: -1, GID: -1},
	}
	p, err := s.Plan(files)
	if err != nil {
		t.Fatal(err)
	}
	var diffs string
	for _, c := range p.Pending() {
		diffs += p.Diff(c)
	}
	for _, secret := range []string{"old-http-secret", "old-s3", "new-s3-secret", "old%2Fdb-pw", "old/db-pw", "new-db-pw"} {
		if strings.Contains(diffs, secret) {
			t.Errorf("the diff shows %q:\n%s", secret, diffs)
		}
	}
	if !strings.Contains(diffs, "-    secretkey: \""+redact.Mask) || !strings.Contains(diffs, "+    secretkey: \""+redact.Mask) {
		t.Errorf("the diff does not show the S3 key changing:\n%s", diffs)
	}
}

func writeTestFile(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// TestSyncRefusesSymlinksOutOfRoot: a link below the root that leads out of
// it is never followed, for reading or writing.
func TestSyncRefusesSymlinksOutOfRoot(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "passwd")
	writeTestFile(t, victim, "root:x:0:0\n", 0o644)

	for _, tc := range []struct{ name, link, target string }{
		{"file", "compose.yaml", victim},
		{"directory", "nginx", outside},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root := newSyncer(t)
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.target, filepath.Join(root, tc.link)); err != nil {
				t.Fatal(err)
			}
			p, err := s.Plan(testFiles("v1\n"))
			if err == nil {
				_, err = s.Apply(context.Background(), p, ApplyOptions{Force: true})
			}
			if err == nil {
				t.Fatal("synced through a symlink leaving the root")
			}
			if got, _ := os.ReadFile(victim); string(got) != "root:x:0:0\n" {
				t.Errorf("the file outside the root changed: %q", got)
			}
			if _, err := os.Stat(filepath.Join(outside, "nginx.conf")); err == nil {
				t.Error("a file was created outside the root")
			}
		})
	}

	// The host itself refuses, whatever the caller checked.
	root := filepath.Join(t.TempDir(), "root")
	writeTestFile(t, filepath.Join(root, "x"), "", 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	h := NewExecHost(root, nil)
	if err := h.WriteFile(filepath.Join(root, "out", "passwd"), []byte("pwned\n"), 0o644); err == nil {
		t.Error("ExecHost wrote through a symlink leaving the root")
	}
	if _, err := h.ReadFile(filepath.Join(root, "out", "passwd")); err == nil {
		t.Error("ExecHost read through a symlink leaving the root")
	}
	if got, _ := os.ReadFile(victim); !bytes.Equal(got, []byte("root:x:0:0\n")) {
		t.Errorf("victim = %q", got)
	}
}
