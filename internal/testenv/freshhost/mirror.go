package freshhost

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// MirrorPort is where the registry Mirror starts listens, on OuterIP.
const MirrorPort = 5000

// Mirror makes the host's dockerd pull Docker Hub images from a registry
// in the outside namespace, so that `docker pull`, `docker run` and
// `docker compose up` find images although the host has no route out, as
// if they came from Docker Hub: it starts that registry (once per host: a
// static distribution v3 on OuterIP:MirrorPort), pushes each docker-archive
// tarball into it under the names in the tarball (regctl-test/nginx:trixie
// is pulled as docker.io/regctl-test/nginx:trixie), and writes
// /etc/docker/daemon.json in the host (registry-mirrors and
// insecure-registries), reloading dockerd if it runs. Call it before or
// after docker is installed; the registry runs until the test ends.
// It returns the mirror's URL.
func (h *Host) Mirror(t testing.TB, tarballs ...string) string {
	t.Helper()
	for _, tb := range tarballs {
		h.MirrorAs(t, tb)
	}
	if len(tarballs) == 0 {
		h.startMirror(t)
	}
	return h.mirrorURL()
}

// MirrorAs is Mirror for one tarball, pushed under the Docker Hub names
// refs instead of (with none given: as) its own: for example
// MirrorAs(t, a.Images.Nginx, "nginx:1.28-alpine") makes regctl's default
// nginx image name pull the Debian stand-in.
func (h *Host) MirrorAs(t testing.TB, tarball string, refs ...string) {
	t.Helper()
	h.startMirror(t)
	start := time.Now()
	names, err := pushArchive(h.HTTPClient(2*time.Minute), h.mirrorURL(), tarball, refs)
	if err != nil {
		t.Fatalf("freshhost: push %s to the mirror: %v", tarball, err)
	}
	t.Logf("freshhost: %s: mirror serves %s (%s)", h.Name, strings.Join(names, ", "), time.Since(start).Round(time.Millisecond))
}

func (h *Host) mirrorURL() string {
	return fmt.Sprintf("http://%s:%d", h.OuterIP, MirrorPort)
}

// startMirror starts the mirror registry and configures the host's dockerd,
// once.
func (h *Host) startMirror(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	started := h.mirror
	h.mirror = true
	h.mu.Unlock()
	if started {
		return
	}
	dir := filepath.Join(h.StateDir, "mirror")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("%s:%d", h.OuterIP, MirrorPort)
	conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	confPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.StartOutside(t, "mirror-"+h.Name, []string{"OTEL_TRACES_EXPORTER=none"}, h.Artifacts.RegistryBin, "serve", confPath)
	client := h.HTTPClient(2 * time.Second)
	p.WaitReady(t, 30*time.Second, func() error {
		resp, err := client.Get(h.mirrorURL() + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: status %d", resp.StatusCode)
		}
		return nil
	})

	daemon, _ := json.MarshalIndent(map[string][]string{
		"registry-mirrors":    {h.mirrorURL()},
		"insecure-registries": {addr},
	}, "", "  ")
	h.CopyIn(t, "/etc/docker/daemon.json", append(daemon, '\n'), 0o644)
	if h.Run(t, "", "systemctl", "is-active", "--quiet", "docker").Code == 0 {
		// Both settings reload on SIGHUP.
		h.MustRun(t, "", "systemctl", "reload", "docker")
		err := testenv.Poll(30*time.Second, 200*time.Millisecond, func() error {
			r, err := h.exec(Cmd{Args: []string{"docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"}, Timeout: 10 * time.Second})
			if err != nil {
				return testenv.Stop(err)
			}
			if !strings.Contains(r.Stdout, h.mirrorURL()) {
				return fmt.Errorf("docker info: mirrors %s", r.Output())
			}
			return nil
		})
		if err != nil {
			t.Fatalf("freshhost: %s: dockerd did not take the mirror: %v", h.Name, err)
		}
	}
}

// archiveManifest is one entry of a docker-archive's manifest.json.
type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// hubRepo turns a Docker Hub image reference into the repository and tag
// a mirror serves it under: nginx:1 is library/nginx, 1.
func hubRepo(ref string) (repo, tag string, err error) {
	ref = strings.TrimPrefix(ref, "docker.io/")
	repo, tag = ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	if first, _, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return "", "", fmt.Errorf("%q names a registry other than Docker Hub: a mirror cannot serve it", ref)
	}
	if strings.Contains(ref, "@") || repo == "" {
		return "", "", fmt.Errorf("%q: want NAME[:TAG]", ref)
	}
	if !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return repo, tag, nil
}

// pushArchive pushes the one image of a docker-archive tarball to the
// registry at base, as an OCI manifest with uncompressed layers, under refs
// (or the tarball's own names), and returns the names pushed.
func pushArchive(client *http.Client, base, tarball string, refs []string) ([]string, error) {
	files, err := readArchive(tarball)
	if err != nil {
		return nil, err
	}
	var ms []archiveManifest
	if err := json.Unmarshal(files["manifest.json"], &ms); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(ms) != 1 {
		return nil, fmt.Errorf("manifest.json holds %d images, want 1", len(ms))
	}
	m := ms[0]
	if len(refs) == 0 {
		refs = m.RepoTags
	}
	if len(refs) == 0 {
		return nil, errors.New("the image has no name: pass one")
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	blob := func(name, mediaType string) (desc, []byte, error) {
		b, ok := files[name]
		if !ok {
			return desc{}, nil, fmt.Errorf("%s is missing from the archive", name)
		}
		sum := sha256.Sum256(b)
		return desc{mediaType, "sha256:" + hex.EncodeToString(sum[:]), len(b)}, b, nil
	}
	cfg, cfgData, err := blob(m.Config, "application/vnd.oci.image.config.v1+json")
	if err != nil {
		return nil, err
	}
	manifest := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json", cfg, nil}
	blobs := map[string][]byte{cfg.Digest: cfgData}
	for _, l := range m.Layers {
		d, data, err := blob(l, "application/vnd.oci.image.layer.v1.tar")
		if err != nil {
			return nil, err
		}
		manifest.Layers = append(manifest.Layers, d)
		blobs[d.Digest] = data
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		repo, tag, err := hubRepo(ref)
		if err != nil {
			return nil, err
		}
		for digest, data := range blobs {
			if err := pushBlob(client, base, repo, digest, data); err != nil {
				return nil, fmt.Errorf("%s: blob %s: %w", ref, digest, err)
			}
		}
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v2/%s/manifests/%s", base, repo, tag), bytes.NewReader(manifestJSON))
		req.Header.Set("Content-Type", manifest.MediaType)
		if err := do(client, req, http.StatusCreated); err != nil {
			return nil, fmt.Errorf("%s: manifest: %w", ref, err)
		}
	}
	return refs, nil
}

func pushBlob(client *http.Client, base, repo, digest string, data []byte) error {
	head, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("%s/v2/%s/blobs/%s", base, repo, digest), nil)
	if err := do(client, head, http.StatusOK); err == nil {
		return nil // already there
	}
	post, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v2/%s/blobs/uploads/", base, repo), nil)
	resp, err := client.Do(post)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST upload: status %d", resp.StatusCode)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	put, _ := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(data))
	put.Header.Set("Content-Type", "application/octet-stream")
	return do(client, put, http.StatusCreated)
}

// do sends req and wants status want.
func do(client *http.Client, req *http.Request, want int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, redactURL(req.URL), resp.StatusCode, want, body)
	}
	return nil
}

func redactURL(u *url.URL) string { return u.Scheme + "://" + u.Host + u.Path }

// readArchive reads every regular file of a tarball into memory (the
// images here are tens of MiB).
func readArchive(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		files[filepath.Clean(hdr.Name)] = b
	}
}
