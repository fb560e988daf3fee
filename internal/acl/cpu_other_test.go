//go:build !unix

package acl

import "time"

// processCPU returns the CPU time the process has used, or 0 if unknown.
func processCPU() time.Duration { return 0 }
