// Package acl holds regctl's access model: scopes as the registry requests
// them, per-user grants, docker_auth-style rules, and the evaluator that turns
// a request into granted actions. It is pure: no I/O, no clock of its own.
package acl

import (
	"net/netip"
	"time"
)

// Actions a registry scope can carry.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// Scope is one resource request or grant: "type(class):name:action,action".
// Type is what precedes the first ':', the actions what follows the last
// ':', and the name everything between (a name may carry host:port).
type Scope struct {
	Type    string   `json:"type"`
	Class   string   `json:"-"` // "plugin" for "repository(plugin)"; not part of the token
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Match is a docker_auth rule condition. Fields are ANDed; a nil field
// matches anything. Patterns are globs (path.Match: '*' stops at '/') or,
// written as /.../, anchored regular expressions. They may contain the
// variables ${account}, ${name}, ${type}, ${service} and ${labels:KEY}.
type Match struct {
	Account *string           `json:"account,omitempty" yaml:"account,omitempty" bson:"account,omitempty"`
	Type    *string           `json:"type,omitempty" yaml:"type,omitempty" bson:"type,omitempty"`
	Name    *string           `json:"name,omitempty" yaml:"name,omitempty" bson:"name,omitempty"`
	Service *string           `json:"service,omitempty" yaml:"service,omitempty" bson:"service,omitempty"`
	IP      *string           `json:"ip,omitempty" yaml:"ip,omitempty" bson:"ip,omitempty"`
	Labels  map[string]string `json:"labels,omitempty" yaml:"labels,omitempty" bson:"labels,omitempty"`
}

// Rule is a docker_auth ACL entry plus regctl's optional expiry. Rules are
// evaluated in Seq order and the first match decides. Actions exactly
// ["*"] allow every requested action; any other list only the requested
// actions it names (see Intersect); an empty, non-nil Actions is an
// explicit deny; a nil Actions is invalid.
type Rule struct {
	Seq       int64      `json:"seq" yaml:"seq" bson:"seq"`
	Match     Match      `json:"match" yaml:"match" bson:"match"`
	Actions   []string   `json:"actions" yaml:"actions" bson:"actions"`
	Comment   string     `json:"comment,omitempty" yaml:"comment,omitempty" bson:"comment,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty" yaml:"expires_at,omitempty" bson:"expires_at,omitempty"`
}

// Grant gives one user actions on repositories whose name matches Pattern
// (a glob, '*' stops at '/'), until ExpiresAt if set. Actions that include
// "*" allow every requested action.
type Grant struct {
	Pattern   string     `json:"pattern" yaml:"pattern" bson:"pattern"`
	Actions   []string   `json:"actions" yaml:"actions" bson:"actions"`
	ExpiresAt *time.Time `json:"expires_at,omitempty" yaml:"expires_at,omitempty" bson:"expires_at,omitempty"`
}

// Subject is who asks: the authenticated account ("" when anonymous), its
// labels and grants, and the client address (zero when unknown).
type Subject struct {
	Account string
	Labels  map[string][]string
	Grants  []Grant
	IP      netip.Addr
}

// Expired reports whether an optional expiry lies at or before now.
func Expired(expiresAt *time.Time, now time.Time) bool {
	return expiresAt != nil && !now.Before(*expiresAt)
}
