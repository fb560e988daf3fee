package certs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Command is a program to run: Argv[0] with Argv[1:], plus Env (KEY=VALUE)
// added to the process's environment.
type Command struct {
	Argv []string
	Env  []string
}

// String is the command line, for messages.
func (c Command) String() string { return strings.Join(c.Argv, " ") }

// Runner runs commands. ExecRunner runs them for real; tests record them
// or point them at a local nginx.
type Runner interface {
	// Run runs cmd to completion and returns its combined output; a
	// non-zero exit is a *CommandError.
	Run(ctx context.Context, cmd Command) ([]byte, error)
}

// CommandError is a command that failed, with its output.
type CommandError struct {
	Cmd    Command
	Output []byte
	Err    error
}

// Error names the command, its exit status and its output.
func (e *CommandError) Error() string {
	var lines []string
	for _, l := range strings.Split(string(e.Output), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return fmt.Sprintf("%s: %v", e.Cmd, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Cmd, e.Err, strings.Join(lines, "; "))
}

// Unwrap returns the exec error.
func (e *CommandError) Unwrap() error { return e.Err }

// ExecRunner runs commands with os/exec, each bounded by Timeout (one
// minute if zero).
type ExecRunner struct{ Timeout time.Duration }

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, c Command) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), &CommandError{Cmd: c, Output: out.Bytes(), Err: err}
	}
	return out.Bytes(), nil
}

// Reloader makes the TLS proxy pick up new certificates without downtime.
type Reloader interface {
	// Check validates the proxy's configuration with the new files.
	Check(ctx context.Context) error
	// Reload reloads the proxy gracefully: open connections finish on
	// the old workers, new ones get the new certificate.
	Reload(ctx context.Context) error
}

// CommandReloader is a Reloader that runs two commands.
type CommandReloader struct {
	Runner        Runner
	CheckCommand  Command
	ReloadCommand Command
}

// Check implements Reloader.
func (r *CommandReloader) Check(ctx context.Context) error {
	if _, err := r.Runner.Run(ctx, r.CheckCommand); err != nil {
		return fmt.Errorf("nginx configuration test failed: %w", err)
	}
	return nil
}

// Reload implements Reloader.
func (r *CommandReloader) Reload(ctx context.Context) error {
	if _, err := r.Runner.Run(ctx, r.ReloadCommand); err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	return nil
}

// ComposeReloader checks and reloads the nginx service of the docker
// compose project in composeFile:
//
//	docker compose -f FILE exec -T SERVICE nginx -t
//	docker compose -f FILE exec -T SERVICE nginx -s reload
func ComposeReloader(r Runner, composeFile, service string) *CommandReloader {
	base := []string{"docker", "compose", "-f", composeFile, "exec", "-T", service, "nginx"}
	return &CommandReloader{
		Runner:        r,
		CheckCommand:  Command{Argv: append(base[:len(base):len(base)], "-t")},
		ReloadCommand: Command{Argv: append(base[:len(base):len(base)], "-s", "reload")},
	}
}

// NginxReloader checks and reloads an nginx started with -p prefix -c
// conf (a local nginx, as in the tests):
//
//	NGINX -p PREFIX -c CONF -t
//	NGINX -p PREFIX -c CONF -s reload
func NginxReloader(r Runner, nginx, prefix, conf string) *CommandReloader {
	base := []string{nginx, "-p", prefix, "-c", conf}
	if !strings.HasSuffix(prefix, "/") {
		base[2] = prefix + "/"
	}
	return &CommandReloader{
		Runner:        r,
		CheckCommand:  Command{Argv: append(base[:len(base):len(base)], "-t")},
		ReloadCommand: Command{Argv: append(base[:len(base):len(base)], "-s", "reload")},
	}
}
