package testenv

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
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
// returns the tarball's path; the layer is dir/layer.tar.gz.
func MakeImage(t testing.TB, crane, dir string) string {
	t.Helper()
	return makeImage(t, crane, dir, []string{MakeLayer(t, dir)})
}

// MakeImageLayers is MakeImage with n layers, each distinct, written to
// dir/layer-I/layer.tar.gz.
func MakeImageLayers(t testing.TB, crane, dir string, n int) string {
	t.Helper()
	var layers []string
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("layer-%d", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, MakeLayer(t, sub))
	}
	return makeImage(t, crane, dir, layers)
}

func makeImage(t testing.TB, crane, dir string, layers []string) string {
	t.Helper()
	out := filepath.Join(dir, "image.tar")
	args := []string{"append"}
	for _, l := range layers {
		args = append(args, "-f", l)
	}
	// -t only names the image inside the tarball; nothing is pushed.
	MustRun(t, nil, "", crane, append(args, "-t", "localhost/regctl-e2e:latest", "-o", out)...)
	return out
}
