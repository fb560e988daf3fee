// Command regctl-bench is regctl's load benchmark: `make bench` builds
// and runs it (scripts/bench.sh). See internal/bench.
package main

import (
	"os"

	"github.com/regctl/regctl/internal/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:]))
}
