// Command regctl provisions a private Docker registry, runs its token
// server and manages users, grants and ACL rules.
package main

import (
	"os"

	"github.com/regctl/regctl/internal/cli"
)

func main() {
	os.Exit(cli.Main())
}
