package cli

import (
	"testing"

	"github.com/spf13/cobra"
)

// Every admin command has a one-line summary and an example.
func TestEveryCommandHasHelp(t *testing.T) {
	e := newEnv(t, nil)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		if c.Short == "" {
			t.Errorf("%s has no Short", c.CommandPath())
		}
		if c.Example == "" && c.Name() != "regctl" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, c := range NewCmdRoot(e.f).Commands() {
		switch c.Name() {
		case "user", "acl", "import", "completion":
			walk(c)
		}
	}
}
