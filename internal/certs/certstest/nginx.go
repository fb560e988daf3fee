package certstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/testenv"
)

// NginxConfig is what the test nginx serves.
type NginxConfig struct {
	// HTTPPort: 127.0.0.1:HTTPPort serves Webroot under
	// /.well-known/acme-challenge/ and redirects everything else to https.
	HTTPPort int
	Webroot  string
	// HTTPSPort, if set: 127.0.0.1:HTTPSPort serves TLS with Fullchain and
	// Privkey (and DHParams, if set) and answers "ok" to every request.
	HTTPSPort          int
	Fullchain, Privkey string
	DHParams           string
}

// Nginx is a running nginx started with -p PREFIX -c PREFIX/nginx.conf.
type Nginx struct {
	Bin, Prefix, Conf string
	proc              *testenv.Proc
}

var nginxConf = template.Must(template.New("nginx.conf").Parse(`# written by certstest
daemon off;
master_process on;
worker_processes 1;
pid {{.Prefix}}/nginx.pid;
error_log {{.Prefix}}/error.log notice;
{{- if .Root}}
user root;
{{- end}}
events { worker_connections 256; }
http {
    access_log {{.Prefix}}/access.log;
    client_body_temp_path {{.Prefix}}/tmp/body;
    proxy_temp_path {{.Prefix}}/tmp/proxy;
    fastcgi_temp_path {{.Prefix}}/tmp/fastcgi;
    uwsgi_temp_path {{.Prefix}}/tmp/uwsgi;
    scgi_temp_path {{.Prefix}}/tmp/scgi;
    default_type text/plain;
    server {
        listen 127.0.0.1:{{.C.HTTPPort}};
        location /.well-known/acme-challenge/ {
            root {{.C.Webroot}};
        }
        location / {
            return 301 https://$host$request_uri;
        }
    }
{{- if .C.HTTPSPort}}
    server {
        listen 127.0.0.1:{{.C.HTTPSPort}} ssl;
        ssl_certificate {{.C.Fullchain}};
        ssl_certificate_key {{.C.Privkey}};
{{- if .C.DHParams}}
        ssl_dhparam {{.C.DHParams}};
{{- end}}
        location / {
            return 200 "ok\n";
        }
    }
{{- end}}
}
`))

// StartNginx writes the configuration into a fresh prefix directory,
// starts nginx in the foreground (REGCTL_TEST_NGINX or nginx from PATH; the
// test is skipped if there is none) and waits until it accepts connections
// on HTTPPort.
func StartNginx(t testing.TB, c NginxConfig) *Nginx {
	t.Helper()
	bin := NginxBinary(t)
	n := &Nginx{Bin: bin, Prefix: t.TempDir()}
	n.Conf = filepath.Join(n.Prefix, "nginx.conf")
	if err := os.MkdirAll(filepath.Join(n.Prefix, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	n.Configure(t, c)
	if out, err := n.run("-t"); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, n.configText(t))
	}
	n.proc = testenv.StartSignal(t, "nginx", syscall.SIGQUIT, nil, bin, "-p", n.Prefix+"/", "-c", n.Conf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- nginx error.log:\n%s", n.ErrorLog())
		}
	})
	n.proc.WaitReady(t, 20*time.Second, testenv.DialCheck(net.JoinHostPort("127.0.0.1", strconv.Itoa(c.HTTPPort))))
	return n
}

// Configure rewrites nginx.conf; Reload (or a certs.Reloader) applies it.
func (n *Nginx) Configure(t testing.TB, c NginxConfig) {
	t.Helper()
	var buf bytes.Buffer
	err := nginxConf.Execute(&buf, map[string]any{"Prefix": n.Prefix, "Root": os.Geteuid() == 0, "C": c})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Conf, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *Nginx) configText(_ testing.TB) string {
	b, _ := os.ReadFile(n.Conf)
	return string(b)
}

// Reload checks the configuration and reloads nginx, failing the test on
// an error.
func (n *Nginx) Reload(t testing.TB) {
	t.Helper()
	r := n.Reloader(certs.ExecRunner{})
	if err := r.Check(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, n.configText(t))
	}
	if err := r.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Reloader returns the certs.Reloader for this nginx: nginx -p PREFIX -c
// CONF -t, then -s reload, run by r.
func (n *Nginx) Reloader(r certs.Runner) *certs.CommandReloader {
	return certs.NginxReloader(r, n.Bin, n.Prefix, n.Conf)
}

func (n *Nginx) run(args ...string) ([]byte, error) {
	argv := append([]string{n.Bin, "-p", n.Prefix + "/", "-c", n.Conf}, args...)
	return certs.ExecRunner{}.Run(context.Background(), certs.Command{Argv: argv})
}

// ErrorLog returns nginx's error.log.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Prefix, "error.log"))
	return string(b)
}

// Reloads counts the reloads nginx logged (SIGHUP received).
func (n *Nginx) Reloads() int { return strings.Count(n.ErrorLog(), "signal 1 (SIGHUP) received") }

// WaitReloads returns the reload count once it reaches want, or after
// timeout. `nginx -s reload` returns once the signal is sent, before the
// master process logs it, so a count read at once may lag by one.
func (n *Nginx) WaitReloads(want int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		got := n.Reloads()
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// String describes the instance.
func (n *Nginx) String() string { return fmt.Sprintf("nginx -p %s", n.Prefix) }
