package testenv

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// MakeLayer writes dir/layer.tar.gz: a gzipped tar holding one small file
// with random content (so every call makes a distinct layer), usable as an
// image layer or as a rootfs for `docker import`. It returns the path.
func MakeLayer(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "layer.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	content := []byte("regctl e2e test layer " + RandomHex(16) + "\n")
	mtime := time.Unix(1700000000, 0)
	for _, h := range []*tar.Header{
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "etc/regctl-e2e", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content)), ModTime: mtime},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(content); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []interface{ Close() error }{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// MakeImage builds a one-layer image with crane (binary crane) and writes it
// to dir/image.tar as a docker-archive tarball (what `docker load` and
// skopeo's docker-archive: transport read; crane push takes it too). It
// returns the tarball's path.
func MakeImage(t testing.TB, crane, dir string) string {
	t.Helper()
	layer := MakeLayer(t, dir)
	out := filepath.Join(dir, "image.tar")
	// -t only names the image inside the tarball; nothing is pushed.
	MustRun(t, nil, "", crane, "append", "-f", layer, "-t", "localhost/regctl-e2e:latest", "-o", out)
	return out
}
