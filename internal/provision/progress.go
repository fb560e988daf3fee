package provision

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Live shows what a running command is doing without printing all its
// output: apt, image builds, ACME and `compose up` write hundreds of
// lines, and a failure shows the end of them in its error anyway.
//
// On a terminal it keeps one line, rewritten in place, with the command,
// the time it has taken and its latest line of output, and clears it when
// the command ends. Elsewhere (a log, CI) it prints that line every Every,
// so a long step is seen to be alive.
type Live struct {
	Out   io.Writer
	TTY   bool
	Every time.Duration // non-TTY interval; 0 means 30 s
	// Tick is the terminal's redraw interval; 0 means 1 s.
	Tick time.Duration
	Now  func() time.Time
}

// Command starts showing the command argv. Write its output to the
// returned writer and call Done when it ends.
func (l *Live) Command(argv []string) *LiveCommand {
	now := l.Now
	if now == nil {
		now = time.Now
	}
	every := l.Every
	if every <= 0 {
		every = 30 * time.Second
	}
	if l.TTY {
		every = l.Tick
		if every <= 0 {
			every = time.Second
		}
	}
	c := &LiveCommand{l: l, label: shortCommand(argv), now: now, start: now(), stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop(every)
	return c
}

// LiveCommand is one command being shown.
type LiveCommand struct {
	l     *Live
	label string
	now   func() time.Time
	start time.Time
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	partial []byte // output after the last newline
	last    string // the latest complete, non-empty line
	shown   bool   // a terminal line is on screen
}

// Write records the command's output.
func (c *LiveCommand) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexAny(c.partial, "\r\n")
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(c.partial[:i])); line != "" {
			c.last = line
		}
		c.partial = c.partial[i+1:]
	}
	if len(c.partial) > 4096 { // a line without end: keep its start
		c.last, c.partial = strings.TrimSpace(string(c.partial[:200])), c.partial[:0]
	}
	return len(p), nil
}

func (c *LiveCommand) loop(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.show()
		}
	}
}

// line is what the live line says now.
func (c *LiveCommand) line() string {
	s := fmt.Sprintf("      … %s (%s)", c.label, c.now().Sub(c.start).Round(time.Second))
	if c.last != "" {
		s += ": " + c.last
	}
	return s
}

func (c *LiveCommand) show() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l.TTY {
		// One terminal line: cut to 100 columns so it never wraps.
		line := c.line()
		if r := []rune(line); len(r) > 100 {
			line = string(r[:99]) + "…"
		}
		fmt.Fprintf(c.l.Out, "\r\033[K%s", line)
		c.shown = true
		return
	}
	fmt.Fprintln(c.l.Out, c.line())
}

// Done stops showing the command and clears its terminal line.
func (c *LiveCommand) Done() {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shown {
		fmt.Fprint(c.l.Out, "\r\033[K")
	}
}

// shortCommand names a command for the live line: its words without
// options, option values that are paths, the compose project or a timeout,
// and URLs,
// at most five of them ("apt-get install ufw fail2ban logrotate",
// "docker compose up", "regctl certs obtain registry.example.com").
func shortCommand(argv []string) string {
	var parts []string
	for i, a := range argv {
		switch {
		case i == 0:
			a = a[strings.LastIndexByte(a, '/')+1:]
		case strings.HasPrefix(a, "-"), strings.Contains(a, "/"), argv[i-1] == "-p", argv[i-1] == "--wait-timeout":
			continue
		}
		parts = append(parts, a)
		if len(parts) == 5 {
			break
		}
	}
	return strings.Join(parts, " ")
}
