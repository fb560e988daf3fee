//go:build integration

package freshhost

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// TestFreshHostShareOutside boots two hosts on one outside namespace
// (Options.ShareOutside): a server listening on the first host's outer
// address answers both, each host's name resolves outside to its own
// address, and the hosts do not reach each other.
func TestFreshHostShareOutside(t *testing.T) {
	a := Boot(t, Options{Hostnames: []string{"a.test"}})
	b := Boot(t, Options{Hostnames: []string{"b.test"}, ShareOutside: a, Subnet: SecondSubnet})
	if b.Netns != a.Netns {
		t.Fatalf("b's outside namespace %s, want a's %s", b.Netns, a.Netns)
	}

	// One server, on a's outer address: a line in, the line out.
	var ln net.Listener
	if err := inNetns("/run/netns/"+a.Netns, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(a.OuterIP.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				c.Write([]byte(line))
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	echo := `exec 3<>/dev/tcp/$0/$1 && echo "$2" >&3 && timeout 5 head -n1 <&3`
	for _, h := range []*Host{a, b} {
		r := h.MustRun(t, "", "timeout", "10", "bash", "-c", echo, a.OuterIP.String(), port, h.Name)
		if got := strings.TrimSpace(r.Stdout); got != h.Name {
			t.Errorf("%s: the shared server echoed %q, want %q", h.Name, got, h.Name)
		}
		if got := strings.TrimSpace(h.MustRun(t, "", "ip", "route", "get", a.OuterIP.String()).Stdout); !strings.Contains(got, "eth0") {
			t.Errorf("%s: route to %s: %s", h.Name, a.OuterIP, got)
		}
	}
	for name, h := range map[string]*Host{"a.test": a, "b.test": b} {
		a.MustOutside(t, "", "sh", "-c", "getent hosts "+name+" | grep -qF "+h.IP.String())
	}
	// The outside end forwards nothing: a does not reach b, nor b a. The
	// packets are dropped, so the connect times out (124); a refusal
	// (exit 1) would mean they got there.
	for _, p := range [][2]*Host{{a, b}, {b, a}} {
		if r := p[0].Run(t, "", "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/$0/22", p[1].IP.String()); r.Code != 124 {
			t.Errorf("%s -> %s at %s: exit %d, want 124 (no answer): %s", p[0].Name, p[1].Name, p[1].IP, r.Code, r.Output())
		}
	}
}
