// Package passwd holds what regctl accepts as a password hash: bcrypt of
// the $2a$, $2b$ or $2y$ variant, as htpasswd -nB and docker_auth write
// it.
package passwd

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// CheckHash accepts a bcrypt hash of the $2a$, $2b$ or $2y$ variant and
// returns its cost.
func CheckHash(h string) (int, error) {
	if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
		return 0, errors.New("not a bcrypt hash: want one starting with $2a$, $2b$ or $2y$ (htpasswd -nBC 12 NAME prints one)")
	}
	if len(h) != 60 {
		return 0, fmt.Errorf("not a bcrypt hash: it has %d characters, want 60 (quote it in single quotes so the shell keeps the $ signs)", len(h))
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return 0, fmt.Errorf("not a valid bcrypt hash: %w", err)
	}
	return cost, nil
}
