// Package benchstack measures the registry stack that `regctl init` builds
// (`make bench-stack`, issue #12): pushes and pulls of a large random image
// through nginx with TLS and straight to the registry container, the share
// of a pull spent on token requests, and init's own wall time.
//
// It has two halves. The client (Run, built as cmd/benchclient) pushes or
// pulls one image with go-containerregistry, the library crane is built
// on, through a transport that times every request; it runs inside the
// host, where both nginx and the registry container are reachable. The
// benchmark (BenchmarkStack, integration build tag) boots a fresh host,
// runs init there and drives the client.
package benchstack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Modes of the client.
const (
	// ModePush builds an image of random layers and pushes it.
	ModePush = "push"
	// ModePull pulls an image, reads every layer (checking its digest)
	// and throws it away.
	ModePull = "pull"
	// ModeCheck waits until the user may push to the repository (users
	// apply within the token server's reload interval).
	ModeCheck = "check"
)

// Options are one run of the client.
type Options struct {
	Mode string
	// Ref is the image, NAME/REPOSITORY:TAG, NAME being the registry's
	// name (its certificate's).
	Ref string
	// Direct, if set (http://ADDR:PORT), receives the registry's /v2/
	// requests instead of NAME: the registry container without nginx.
	// Tokens still come from the realm the registry names, through nginx,
	// and the upload URLs it returns (absolute, on NAME, from its
	// http.host) are sent to Direct too.
	Direct string
	// CAFile holds the PEM certificates trusted for https (the
	// self-signed certificate of `init --self-signed`); empty: the system's.
	CAFile   string
	User     string
	Password string
	// Layers and LayerSize shape a pushed image: Layers layers, each a tar
	// holding one file of LayerSize random bytes.
	Layers    int
	LayerSize int64
	// Seed picks the random bytes: the same seed, the same image.
	Seed string
	// Jobs is how many blobs move at once (go-containerregistry's
	// default, 4).
	Jobs int
	// HTTP1 turns HTTP/2 off (crane, like this client, offers it to TLS
	// servers).
	HTTP1   bool
	Timeout time.Duration

	// dialTo maps HOST:PORT addresses to others (tests).
	dialTo map[string]string
}

// Stat is a count of requests and the sum of their durations.
type Stat struct {
	Count   int     `json:"count"`
	Seconds float64 `json:"seconds"`
}

// Result is what one run measured. It is printed as JSON.
type Result struct {
	Mode   string `json:"mode"`
	Ref    string `json:"ref"`
	Direct string `json:"direct,omitempty"`
	// Digest is the manifest's.
	Digest string `json:"digest"`
	// Bytes is the layer bytes sent (push) or received and checked (pull).
	Bytes int64 `json:"bytes"`
	// Seconds is the operation's wall time, from the first request (the
	// ping) to the last byte; for a push, the layers were generated and
	// hashed before.
	Seconds float64 `json:"seconds"`
	// MBps is Bytes/Seconds in MB/s (10^6 bytes).
	MBps float64 `json:"mbps"`
	// TokenRequests and TokenSeconds: requests outside /v2/ (the realm),
	// and the wall time during which at least one was under way.
	TokenRequests int     `json:"token_requests"`
	TokenSeconds  float64 `json:"token_seconds"`
	// TokenShare is TokenSeconds/Seconds.
	TokenShare float64 `json:"token_share"`
	// Requests by "KIND STATUS" (KIND: token, ping, upload, blob,
	// manifest; STATUS the HTTP status or "error").
	Requests map[string]Stat `json:"requests"`
	// V2Hosts counts where /v2/ requests went (after Direct's rewrite),
	// Protocols the HTTP versions of all answers.
	V2Hosts   map[string]int `json:"v2_hosts"`
	Protocols map[string]int `json:"protocols"`
	// ClientCPU is the CPU time this process used during the operation
	// (generating or checking the bytes, TLS), in seconds; MachineBusy the
	// share of all CPUs of the machine that were busy meanwhile (from
	// /proc/stat, which a container shares with its machine), CPUs their
	// number.
	ClientCPU   float64 `json:"client_cpu"`
	MachineBusy float64 `json:"machine_busy"`
	CPUs        int     `json:"cpus"`
}

// Main is the client's command line (cmd/benchclient): flags as Options,
// the password on the first line of stdin, the Result as JSON on stdout.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return mainRun(args, stdin, stdout, stderr, Run)
}

// mainRun is Main with run in place of Run (tests).
func mainRun(args []string, stdin io.Reader, stdout, stderr io.Writer, run func(context.Context, Options) (*Result, error)) int {
	fs := flag.NewFlagSet("benchclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.Mode, "mode", "", "push, pull or check")
	fs.StringVar(&o.Ref, "ref", "", "image reference, NAME/REPOSITORY:TAG")
	fs.StringVar(&o.Direct, "direct", "", "send the registry's /v2/ requests to this URL (http://ADDR:PORT) instead of NAME")
	fs.StringVar(&o.CAFile, "ca", "", "PEM file of trusted certificates")
	fs.StringVar(&o.User, "user", "", "user name; the password is read from stdin")
	fs.IntVar(&o.Layers, "layers", 8, "layers of a pushed image")
	fs.Int64Var(&o.LayerSize, "layer-size", 128<<20, "random bytes per layer")
	fs.StringVar(&o.Seed, "seed", "", "seed of the random bytes (push)")
	fs.IntVar(&o.Jobs, "jobs", 4, "blobs moved at once")
	fs.BoolVar(&o.HTTP1, "http1", false, "no HTTP/2")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.User != "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(stderr, "benchclient: read the password from stdin: %v\n", err)
			return 1
		}
		o.Password = strings.TrimRight(line, "\r\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "benchclient: %s %s: %v\n", o.Mode, o.Ref, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(stderr, "benchclient: %v\n", err)
		return 1
	}
	return 0
}

// Run does what o.Mode says and returns the measurements.
func Run(ctx context.Context, o Options) (*Result, error) {
	ref, err := name.ParseReference(o.Ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("parse -ref: %w", err)
	}
	if o.Jobs < 1 {
		o.Jobs = 1
	}
	tt, err := newTimingTransport(o, ref.Context().RegistryStr())
	if err != nil {
		return nil, err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: o.User, Password: o.Password})
	if o.User == "" {
		auth = authn.Anonymous
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(tt),
		remote.WithJobs(o.Jobs),
		remote.WithUserAgent("regctl-benchclient"),
	}
	res := &Result{Mode: o.Mode, Ref: ref.String(), Direct: o.Direct}
	switch o.Mode {
	case ModePush:
		err = push(o, ref, opts, tt, res)
	case ModePull:
		err = pull(ctx, o, ref, opts, tt, res)
	case ModeCheck:
		return res, check(ctx, ref, auth, tt)
	default:
		return nil, fmt.Errorf("-mode %q: want %s, %s or %s", o.Mode, ModePush, ModePull, ModeCheck)
	}
	if err != nil {
		return nil, err
	}
	if res.Seconds > 0 {
		res.MBps = float64(res.Bytes) / res.Seconds / 1e6
		res.TokenShare = res.TokenSeconds / res.Seconds
	}
	return res, nil
}

// setDigest records img's digest, the image pushed or pulled.
func (res *Result) setDigest(img v1.Image) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	res.Digest = d.String()
	return nil
}

func push(o Options, ref name.Reference, opts []remote.Option, tt *timingTransport, res *Result) error {
	var sent atomic.Int64
	img, err := RandomImage(o.Seed, o.Layers, o.LayerSize, &sent)
	if err != nil {
		return err
	}
	if err := res.setDigest(img); err != nil {
		return err
	}
	start := tt.begin()
	err = remote.Write(ref, img, opts...)
	tt.end(start, res)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	res.Bytes = sent.Load()
	return nil
}

func pull(ctx context.Context, o Options, ref name.Reference, opts []remote.Option, tt *timingTransport, res *Result) error {
	start := tt.begin()
	var got atomic.Int64
	err := func() error {
		img, err := remote.Image(ref, opts...)
		if err != nil {
			return err
		}
		if err := res.setDigest(img); err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(o.Jobs)
		for _, l := range layers {
			g.Go(func() error {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				size, err := l.Size()
				if err != nil {
					return err
				}
				// remote's reader checks the digest at EOF.
				rc, err := l.Compressed()
				if err != nil {
					return err
				}
				defer rc.Close()
				n, err := io.Copy(io.Discard, rc)
				got.Add(n)
				if err != nil {
					return err
				}
				if n != size {
					return fmt.Errorf("layer of %d bytes: got %d", size, n)
				}
				return nil
			})
		}
		return g.Wait()
	}()
	tt.end(start, res)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	res.Bytes = got.Load()
	return nil
}

// check waits until the user may push to ref's repository.
func check(ctx context.Context, ref name.Reference, auth authn.Authenticator, tt *timingTransport) error {
	kc := staticKeychain{auth}
	for {
		err := remote.CheckPushPermission(ref, kc, tt)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no push permission yet: %w", err)
		case <-time.After(time.Second):
		}
	}
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// RandomImage returns an OCI image of n uncompressed layers, each a tar
// holding one file of size random bytes from a ChaCha8 stream seeded by
// seed and the layer's index: incompressible, the same for the same seed,
// and generated while it is read rather than held in memory. Making it
// reads every layer once, for its digest. sent (if not nil) counts the
// bytes read from the layers later, by a push.
func RandomImage(seed string, n int, size int64, sent *atomic.Int64) (v1.Image, error) {
	if n < 1 || size < 1 {
		return nil, fmt.Errorf("random image: %d layers of %d bytes", n, size)
	}
	adds := make([]mutate.Addendum, n)
	for i := range adds {
		l, err := newRandomLayer(sha256.Sum256([]byte(seed+"/"+strconv.Itoa(i))), size, sent)
		if err != nil {
			return nil, err
		}
		adds[i] = mutate.Addendum{Layer: l, MediaType: types.OCIUncompressedLayer}
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	return mutate.Append(img, adds...)
}

// randomLayer is a v1.Layer whose tar is generated on every read.
type randomLayer struct {
	seed            [32]byte
	size            int64 // of the file inside
	header, trailer []byte
	total           int64
	digest          v1.Hash
	sent            *atomic.Int64
}

func newRandomLayer(seed [32]byte, size int64, sent *atomic.Int64) (*randomLayer, error) {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     "random.bin",
		Mode:     0o644,
		Size:     size,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}); err != nil {
		return nil, err
	}
	pad := (512 - size%512) % 512
	l := &randomLayer{seed: seed, size: size, header: hdr.Bytes(), trailer: make([]byte, pad+1024), sent: sent}
	h := sha256.New()
	n, err := io.Copy(h, l.open())
	if err != nil {
		return nil, err
	}
	l.total = n
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	return l, nil
}

func (l *randomLayer) open() io.Reader {
	return io.MultiReader(bytes.NewReader(l.header), io.LimitReader(rand.NewChaCha8(l.seed), l.size), bytes.NewReader(l.trailer))
}

func (l *randomLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *randomLayer) DiffID() (v1.Hash, error) { return l.digest, nil }
func (l *randomLayer) Size() (int64, error)     { return l.total, nil }
func (l *randomLayer) MediaType() (types.MediaType, error) {
	return types.OCIUncompressedLayer, nil
}

func (l *randomLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(&countingReader{r: l.open(), n: l.sent}), nil
}

func (l *randomLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n != nil {
		c.n.Add(int64(n))
	}
	return n, err
}

// timingTransport times every request, from RoundTrip to the close (or
// end) of the answer's body, and sends the registry's /v2/ requests to
// Options.Direct if set.
type timingTransport struct {
	base   http.RoundTripper
	name   string   // the registry, HOST[:PORT] as in Ref
	direct *url.URL // nil: no rewrite

	mu     sync.Mutex
	spans  []span
	hosts  map[string]int
	protos map[string]int
	cpu0   cpuSample
}

type span struct {
	kind, status string
	start, end   time.Time
}

func newTimingTransport(o Options, registry string) (*timingTransport, error) {
	base := remote.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = nil
	if len(o.dialTo) > 0 {
		dial := base.DialContext
		base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := o.dialTo[addr]; ok {
				addr = to
			}
			return dial(ctx, network, addr)
		}
	}
	base.TLSClientConfig = &tls.Config{}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", o.CAFile)
		}
		base.TLSClientConfig.RootCAs = pool
	}
	if o.HTTP1 {
		base.ForceAttemptHTTP2 = false
		base.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t := &timingTransport{base: base, name: registry, hosts: map[string]int{}, protos: map[string]int{}}
	if o.Direct != "" {
		u, err := url.Parse(o.Direct)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("-direct %q: want http://ADDR:PORT", o.Direct)
		}
		t.direct = u
	}
	return t, nil
}

// Kinds of requests.
const (
	KindToken    = "token"
	KindPing     = "ping"
	KindUpload   = "upload"
	KindBlob     = "blob"
	KindManifest = "manifest"
	KindOther    = "other"
)

// kind classifies a request: everything outside /v2/ goes to the realm.
func kind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case !strings.HasPrefix(p, "/v2/"):
		return KindToken
	case p == "/v2/":
		return KindPing
	case strings.Contains(p, "/blobs/uploads/"):
		return KindUpload
	case strings.Contains(p, "/blobs/"):
		return KindBlob
	case strings.Contains(p, "/manifests/"):
		return KindManifest
	}
	return KindOther
}

func (t *timingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	k := kind(req)
	orig := req
	if t.direct != nil && k != KindToken && req.URL.Host == t.name {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host, req.Host = t.direct.Scheme, t.direct.Host, ""
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		// The caller sees its own request answered: an https URL stays
		// https (go-containerregistry takes an http one for a redirect to
		// an insecure registry).
		resp.Request = orig
	}
	if err != nil {
		t.record(span{kind: k, status: "error", start: start, end: time.Now()}, req, nil)
		return nil, err
	}
	var once sync.Once
	done := func() {
		once.Do(func() {
			t.record(span{kind: k, status: strconv.Itoa(resp.StatusCode), start: start, end: time.Now()}, req, resp)
		})
	}
	resp.Body = &timedBody{rc: resp.Body, done: done}
	return resp, nil
}

func (t *timingTransport) record(s span, req *http.Request, resp *http.Response) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spans = append(t.spans, s)
	if s.kind != KindToken {
		t.hosts[req.URL.Host]++
	}
	if resp != nil {
		t.protos[resp.Proto]++
	}
}

// begin forgets earlier requests (the check, a previous run) and returns
// the operation's start.
func (t *timingTransport) begin() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spans = nil
	clear(t.hosts)
	clear(t.protos)
	t.cpu0 = sampleCPU()
	return time.Now()
}

// end fills res with what happened since start.
func (t *timingTransport) end(start time.Time, res *Result) {
	stop := time.Now()
	cpu1 := sampleCPU()
	t.mu.Lock()
	defer t.mu.Unlock()
	res.Seconds = stop.Sub(start).Seconds()
	res.ClientCPU = (cpu1.self - t.cpu0.self).Seconds()
	if total := cpu1.total - t.cpu0.total; total > 0 {
		res.MachineBusy = float64(total-(cpu1.idle-t.cpu0.idle)) / float64(total)
	}
	res.CPUs = cpu1.cpus
	res.Requests = map[string]Stat{}
	var token []span
	for _, s := range t.spans {
		key := s.kind + " " + s.status
		st := res.Requests[key]
		st.Count++
		st.Seconds += s.end.Sub(s.start).Seconds()
		res.Requests[key] = st
		if s.kind == KindToken {
			token = append(token, s)
		}
	}
	res.TokenRequests = len(token)
	res.TokenSeconds = union(token, start, stop).Seconds()
	res.V2Hosts = maps.Clone(t.hosts)
	res.Protocols = maps.Clone(t.protos)
}

// union is how long at least one of spans was under way between from and to.
func union(spans []span, from, to time.Time) time.Duration {
	slices.SortFunc(spans, func(a, b span) int { return a.start.Compare(b.start) })
	var total time.Duration
	var curStart, curEnd time.Time
	for _, s := range spans {
		a, b := s.start, s.end
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if !b.After(a) {
			continue
		}
		if a.After(curEnd) {
			total += curEnd.Sub(curStart)
			curStart, curEnd = a, b
		} else if b.After(curEnd) {
			curEnd = b
		}
	}
	return total + curEnd.Sub(curStart)
}

// timedBody calls done at EOF or Close, whichever comes first.
type timedBody struct {
	rc   io.ReadCloser
	done func()
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *timedBody) Close() error {
	err := b.rc.Close()
	b.done()
	return err
}

// cpuSample is this process's CPU time and the machine's CPU counters
// (clock ticks of all CPUs; idle includes iowait).
type cpuSample struct {
	self        time.Duration
	total, idle uint64
	cpus        int
}

func sampleCPU() cpuSample {
	var c cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			c.cpus++
			continue
		}
		// user nice system idle iowait irq softirq steal (guest is in user)
		for i, v := range f[1:min(len(f), 9)] {
			n, _ := strconv.ParseUint(v, 10, 64)
			c.total += n
			if i == 3 || i == 4 {
				c.idle += n
			}
		}
	}
	return c
}
