package testenv

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	r := Run(t, []string{"TESTENV_X=from-env"}, "in\n", "sh", "-c", `read line; echo "$line $TESTENV_X"; echo oops >&2; exit 3`)
	if r.Code != 3 || r.Stdout != "in from-env\n" || r.Stderr != "oops\n" {
		t.Errorf("Run = %+v, want exit 3, stdout %q, stderr %q", r, "in from-env\n", "oops\n")
	}
	if got := r.Output(); got != "in from-env\noops\n" {
		t.Errorf("Output() = %q", got)
	}
}

func TestMongoURI(t *testing.T) {
	for _, tt := range []struct{ base, want string }{
		{"mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/db1"},
		{"mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017/db1"},
		{"mongodb://127.0.0.1:27017/other?directConnection=true", "mongodb://127.0.0.1:27017/db1?directConnection=true"},
	} {
		if got := MongoURI(t, tt.base, "db1"); got != tt.want {
			t.Errorf("MongoURI(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, n)
	}
	err := Poll(20*time.Millisecond, time.Millisecond, func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "never") {
		t.Errorf("Poll of a failing check = %v, want an error wrapping the last one", err)
	}
}

func TestStartStop(t *testing.T) {
	p := Start(t, "sleeper", []string{"TESTENV_Y=hello"}, "sh", "-c", `echo "up $TESTENV_Y"; trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done`)
	p.WaitReady(t, 5*time.Second, func() error {
		if !strings.Contains(p.Log(0), "up hello") {
			return errors.New("no greeting yet")
		}
		return nil
	})
	if exited, _ := p.Exited(); exited {
		t.Fatal("exited early")
	}
	start := time.Now()
	p.Stop()
	if exited, _ := p.Exited(); !exited || p.Cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("after Stop: exited %v, state %v; want a clean exit", exited, p.Cmd.ProcessState)
	}
	if d := time.Since(start); d > StopTimeout/2 {
		t.Errorf("Stop took %s; SIGTERM should have ended it at once", d)
	}
	if !strings.Contains(p.Log(0), "bye") {
		t.Errorf("log %q lacks the TERM handler's output", p.Log(0))
	}
	p.Stop() // idempotent
}

func TestMakeLayer(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(MakeLayer(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "etc/,etc/regctl-e2e" {
		t.Errorf("layer holds %s", got)
	}
}
