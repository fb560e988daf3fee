package benchstack

import (
	"regexp"
	"strings"
	"testing"
)

var stepLine = regexp.MustCompile(`^\[(\d+)/\d+\] `)

// initSteps condenses the progress `regctl init` prints to one entry per
// step with its outcome and time: "1 already in place (300ms), 2 done in
// 1.4s, ...".
func initSteps(stderr string) string {
	lines := strings.Split(stderr, "\n")
	var out []string
	for i, l := range lines {
		m := stepLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		result := "?"
		for _, r := range lines[i+1:] {
			r = strings.TrimSpace(r)
			if stepLine.MatchString(r) {
				break
			}
			switch {
			case strings.HasPrefix(r, "skipped"):
				result = "skipped"
			case strings.HasPrefix(r, "done in"), strings.HasPrefix(r, "already in place"), strings.HasPrefix(r, "FAILED"):
				result = r
			}
		}
		out = append(out, m[1]+" "+result)
	}
	return strings.Join(out, ", ")
}

func TestInitSteps(t *testing.T) {
	stderr := `Preflight:
    ok   root  running as root
  [1/9] install packages (ufw, fail2ban, docker with compose)
        already in place (300ms)
  [2/9] firewall: SSH first, then 80 and 443, deny the rest
        create    firewall/ (mode 0755)
        done in 1.4s
  [9/9] certificate renewal schedule
        skipped: self-signed certificates are not renewed (run init without --self-signed)

regctl is running at https://registry.regctl.test
`
	want := "1 already in place (300ms), 2 done in 1.4s, 9 skipped"
	if got := initSteps(stderr); got != want {
		t.Errorf("initSteps = %q, want %q", got, want)
	}
}
