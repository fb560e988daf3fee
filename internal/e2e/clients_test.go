//go:build integration

package e2e

import (
	"testing"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/clients"
)

// newClient returns a client of kind for user on stack s (see package
// clients). It skips the test if the client's tool (or, for docker, the
// dockerd) is missing.
func newClient(t *testing.T, kind string, s *stack, user, pw string) *clients.Client {
	t.Helper()
	c := clients.New(t, kind, s.env.crane, s.reg.Host, user, pw, t.TempDir())
	c.Image, c.Layer = s.image, s.layer
	if kind == "docker" {
		c.Env = append(c.Env, "DOCKER_HOST="+testenv.Dockerd(t))
	}
	return c
}
