// Command benchclient pushes or pulls one image and prints what it
// measured as JSON; `make bench-stack` runs it inside a fresh host (see
// package benchstack).
package main

import (
	"os"

	"github.com/regctl/regctl/internal/benchstack"
)

func main() { os.Exit(benchstack.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
