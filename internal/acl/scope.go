package acl

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Limits on what a client may request.
const (
	// MaxScopeLength is the longest single scope string ParseScope accepts.
	MaxScopeLength = 1024
	// MaxNameLength is the longest repository name, as in distribution's
	// reference package.
	MaxNameLength = 255
	// MaxScopes is how many scopes one ParseScopes call accepts, counted
	// before scopes for the same resource are merged.
	MaxScopes = 64
)

// Resource types a scope can name.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
)

// action bits, in canonical order.
const (
	bitPull uint8 = 1 << iota
	bitPush
	bitDelete
	bitAll
)

// canonicalActions lists the known actions in canonical order; the index
// of each is the bit position of its action bit.
var canonicalActions = [...]string{ActionPull, ActionPush, ActionDelete, ActionAll}

const allowedActionsText = "pull, push, delete, *"

func actionBit(a string) uint8 {
	switch a {
	case ActionPull:
		return bitPull
	case ActionPush:
		return bitPush
	case ActionDelete:
		return bitDelete
	case ActionAll:
		return bitAll
	}
	return 0
}

// actionsFromBits returns a fresh slice of the actions in bits, in
// canonical order.
func actionsFromBits(bits uint8) []string {
	out := make([]string, 0, 4)
	for i, a := range canonicalActions {
		if bits&(1<<i) != 0 {
			out = append(out, a)
		}
	}
	return out
}

// ParseScope parses one scope as the distribution token specification
// writes it: "type[(class)]:name:action[,action...]". The type is what
// precedes the first ':', the actions what follows the last ':', and the
// name everything in between, so names may carry a registry host:port
// ("repository:localhost:5000/foo/bar:pull").
//
// Only the types "repository" and "registry" are accepted. A repository
// name must follow distribution's reference grammar (lowercase alphanumeric
// path components separated by '/', each component's alphanumeric runs
// joined by '.', '_', '__' or one or more '-', optionally preceded by a
// domain[:port] component) and be at most MaxNameLength characters. A
// registry scope must be "registry:catalog:*". Actions are pull, push,
// delete and *; duplicates are dropped and the result is in the canonical
// order pull, push, delete, *, whatever order the client used. The whole
// scope may be at most MaxScopeLength characters.
func ParseScope(s string) (Scope, error) {
	if len(s) > MaxScopeLength {
		return Scope{}, fmt.Errorf("scope %q: longer than %d characters", clip(s), MaxScopeLength)
	}
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Scope{}, fmt.Errorf("scope %q: want type:name:actions", clip(s))
	}
	sc := Scope{Type: s[:first], Name: s[first+1 : last]}

	if open := strings.IndexByte(sc.Type, '('); open >= 0 {
		if !strings.HasSuffix(sc.Type, ")") {
			return Scope{}, fmt.Errorf("scope %q: resource class must be written type(class)", clip(s))
		}
		sc.Type, sc.Class = sc.Type[:open], sc.Type[open+1:len(sc.Type)-1]
		if !isLowerAlnum(sc.Class) {
			return Scope{}, fmt.Errorf("scope %q: resource class %q must be lowercase letters and digits", clip(s), clip(sc.Class))
		}
	} else if strings.IndexByte(sc.Type, ')') >= 0 {
		return Scope{}, fmt.Errorf("scope %q: resource class must be written type(class)", clip(s))
	}
	switch sc.Type {
	case TypeRepository, TypeRegistry:
	case "":
		return Scope{}, fmt.Errorf("scope %q: resource type is empty", clip(s))
	default:
		return Scope{}, fmt.Errorf("scope %q: unsupported resource type %q (want repository or registry)", clip(s), clip(sc.Type))
	}

	bits, err := parseActions(s[last+1:])
	if err != nil {
		return Scope{}, fmt.Errorf("scope %q: %w", clip(s), err)
	}
	sc.Actions = actionsFromBits(bits)

	if sc.Type == TypeRegistry {
		switch {
		case sc.Class != "":
			return Scope{}, fmt.Errorf("scope %q: registry scopes take no resource class", clip(s))
		case sc.Name != "catalog":
			return Scope{}, fmt.Errorf("scope %q: registry scope name must be \"catalog\", got %q", clip(s), clip(sc.Name))
		case bits != bitAll:
			return Scope{}, fmt.Errorf("scope %q: registry scope allows only the action \"*\"", clip(s))
		}
		return sc, nil
	}
	if err := validateRepoName(sc.Name); err != nil {
		return Scope{}, fmt.Errorf("scope %q: %w", clip(s), err)
	}
	return sc, nil
}

// parseActions parses a comma separated action list into action bits.
func parseActions(list string) (uint8, error) {
	if list == "" {
		return 0, errors.New("no actions")
	}
	var bits uint8
	for list != "" {
		a := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			a, list = list[:i], list[i+1:]
			if list == "" {
				return 0, errors.New("empty action after trailing ','")
			}
		} else {
			list = ""
		}
		if a == "" {
			return 0, errors.New("empty action in list")
		}
		b := actionBit(a)
		if b == 0 {
			return 0, fmt.Errorf("unknown action %q (allowed: %s)", clip(a), allowedActionsText)
		}
		bits |= b
	}
	return bits, nil
}

// ParseScopes parses the values of every "scope" parameter of a token
// request. Each value may hold several scopes separated by spaces. Scopes
// for the same (type, name) are merged into one whose actions are the
// union, in canonical order; resources keep the order in which they were
// first seen, and a merged scope keeps the first resource class any of its
// parts carried. More than MaxScopes scopes (before merging) is an error,
// as is any invalid scope. With no scopes the result is an empty slice.
func ParseScopes(values []string) ([]Scope, error) {
	out := []Scope{}
	n := 0
	for _, v := range values {
		for f := range strings.FieldsSeq(v) {
			n++
			if n > MaxScopes {
				return nil, fmt.Errorf("more than %d scopes requested", MaxScopes)
			}
			sc, err := ParseScope(f)
			if err != nil {
				return nil, err
			}
			merged := false
			for i := range out {
				o := &out[i]
				if o.Type != sc.Type || o.Name != sc.Name {
					continue
				}
				o.Actions = actionsFromBits(bitsOf(o.Actions) | bitsOf(sc.Actions))
				if o.Class == "" {
					o.Class = sc.Class
				}
				merged = true
				break
			}
			if !merged {
				out = append(out, sc)
			}
		}
	}
	return out, nil
}

func bitsOf(actions []string) uint8 {
	var bits uint8
	for _, a := range actions {
		bits |= actionBit(a)
	}
	return bits
}

// String renders the scope as "type[(class)]:name:action,action".
func (s Scope) String() string {
	var b strings.Builder
	b.Grow(len(s.Type) + len(s.Class) + len(s.Name) + 24)
	b.WriteString(s.Type)
	if s.Class != "" {
		b.WriteByte('(')
		b.WriteString(s.Class)
		b.WriteByte(')')
	}
	b.WriteByte(':')
	b.WriteString(s.Name)
	b.WriteByte(':')
	for i, a := range s.Actions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a)
	}
	return b.String()
}

// Intersect returns the requested actions that a rule's actions allow, as
// docker_auth decides them: actions that are exactly ["*"] allow every
// requested action; any other list allows the requested actions it names
// literally, so ["pull", "*"] allows pull, and a requested "*" (the
// registry's catalog scope asks for it) only where "*" is listed. The
// result is in requested order, without duplicates, and never nil.
func Intersect(requested, allowed []string) []string {
	return intersectInto(make([]string, 0, len(requested)), requested, allowed, AllowsAll(allowed))
}

// AllowsAll reports whether a rule's actions allow every requested
// action: whether they are exactly ["*"]. A list that has "*" among other
// actions is legal (docker_auth accepts it) but almost certainly a
// mistake; MixesAll reports it.
func AllowsAll(actions []string) bool {
	return len(actions) == 1 && actions[0] == ActionAll
}

// MixesAll reports whether a rule's actions list "*" along with other
// actions (or twice): such a rule allows what it lists literally, not
// every action.
func MixesAll(actions []string) bool {
	return len(actions) > 1 && slices.Contains(actions, ActionAll)
}

// grantAllowsAll reports whether a grant's actions allow every requested
// action: whether they include "*". Grants are regctl's own, and there
// "*" has always meant every action wherever it is listed.
func grantAllowsAll(actions []string) bool {
	return slices.Contains(actions, ActionAll)
}

// intersectInto appends to dst the requested actions that allowed lists,
// or every requested action when all is set, in requested order and
// without duplicates.
func intersectInto(dst, requested, allowed []string, all bool) []string {
	start := len(dst)
	for _, r := range requested {
		if (all || contains(allowed, r)) && !contains(dst[start:], r) {
			dst = append(dst, r)
		}
	}
	return dst
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// validateRepoName checks a repository name against distribution's
// reference grammar: [domain '/'] path-component ('/' path-component)*.
func validateRepoName(name string) error {
	if name == "" {
		return errors.New("repository name is empty")
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("repository name is %d characters long (max %d)", len(name), MaxNameLength)
	}
	rest := name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		// The optional domain component: a first component that is a valid
		// path component is read as one (the grammar allows either).
		first := name[:i]
		if pathComponentError(first) != nil {
			if derr := domainError(first); derr == nil {
				rest = name[i+1:]
			} else if strings.ContainsAny(first, ":[]") || hasUpper(first) {
				return derr
			}
		}
	}
	for {
		comp, tail, more := strings.Cut(rest, "/")
		if err := pathComponentError(comp); err != nil {
			return err
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// pathComponentError checks alpha-numeric (separator alpha-numeric)* with
// alpha-numeric = [a-z0-9]+ and separator = [._] | __ | [-]+.
func pathComponentError(c string) error {
	if c == "" {
		return errors.New("repository name has an empty path component (leading, trailing or double '/')")
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		switch {
		case isLowerAlnumByte(ch), ch == '.', ch == '_', ch == '-':
		case ch >= 'A' && ch <= 'Z':
			return fmt.Errorf("path component %q has an uppercase letter (repository names are lowercase)", c)
		default:
			return fmt.Errorf("path component %q has invalid character %q", c, rune(ch))
		}
	}
	if !isLowerAlnumByte(c[0]) || !isLowerAlnumByte(c[len(c)-1]) {
		return fmt.Errorf("path component %q must start and end with a lowercase letter or digit", c)
	}
	for i := 0; i < len(c); {
		if isLowerAlnumByte(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !isLowerAlnumByte(c[j]) {
			j++
		}
		sep := c[i:j]
		if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return fmt.Errorf("path component %q has invalid separator %q (use '.', '_', '__' or '-')", c, sep)
		}
		i = j
	}
	return nil
}

// domainError checks host [':' port] where host is a dotted list of
// [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])? labels or a bracketed IPv6
// address.
func domainError(d string) error {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return fmt.Errorf("registry host %q: unterminated '['", d)
		}
		host, port = d[:end+1], d[end+1:]
		inner := host[1:end]
		if inner == "" || strings.Trim(inner, "0123456789abcdefABCDEF:") != "" {
			return fmt.Errorf("registry host %q: invalid IPv6 address", d)
		}
		if port != "" {
			if port[0] != ':' {
				return fmt.Errorf("registry host %q: unexpected text after ']'", d)
			}
			port = port[1:]
			if port == "" {
				return fmt.Errorf("registry host %q: empty port", d)
			}
		}
	} else if i := strings.IndexByte(d, ':'); i >= 0 {
		host, port = d[:i], d[i+1:]
		if port == "" {
			return fmt.Errorf("registry host %q: empty port", d)
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return fmt.Errorf("registry host %q: port %q is not a number", d, port)
		}
	}
	if strings.HasPrefix(host, "[") {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" {
			return fmt.Errorf("registry host %q: empty host label", d)
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !isLowerAlnumByte(ch) && (ch < 'A' || ch > 'Z') && ch != '-' {
				return fmt.Errorf("registry host %q: invalid character %q", d, rune(ch))
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("registry host %q: host label %q starts or ends with '-'", d, label)
		}
	}
	return nil
}

func isLowerAlnumByte(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
}

func isLowerAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerAlnumByte(s[i]) {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// clip shortens s for use in an error message.
func clip(s string) string {
	const maxLen = 80
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "..."
}
