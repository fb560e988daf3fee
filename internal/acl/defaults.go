package acl

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultRules are the two classic docker_auth label rules: label
// full-access=PATTERN allows every action on matching repositories,
// read-only-access=PATTERN pull (`regctl acl defaults` installs them).
func DefaultRules() []Rule {
	full, ro := "${labels:full-access}", "${labels:read-only-access}"
	return []Rule{
		{Seq: 10, Match: Match{Name: &full}, Actions: []string{ActionAll},
			Comment: "label full-access=PATTERN: every action on matching repositories"},
		{Seq: 20, Match: Match{Name: &ro}, Actions: []string{ActionPull},
			Comment: "label read-only-access=PATTERN: pull matching repositories"},
	}
}

// MixedActionsNote explains what a rule whose actions list "*" among
// others allows, or returns "" for other rules. Such a list is legal, in
// docker_auth too, but almost certainly meant to allow everything.
func MixedActionsNote(actions []string) string {
	if !MixesAll(actions) {
		return ""
	}
	var named []string
	for _, a := range actions {
		if a != ActionAll && !slices.Contains(named, a) {
			named = append(named, a)
		}
	}
	allows := "only a requested *"
	if len(named) > 0 {
		allows = "only " + strings.Join(named, ",") + " (and a requested *)"
	}
	return fmt.Sprintf("actions %s allow %s, not every action: only actions that are exactly * allow everything, as in docker_auth",
		strings.Join(actions, ","), allows)
}
