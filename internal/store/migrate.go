package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/acl"
)

// MigrateReport says what Migrate did.
type MigrateReport struct {
	Created   []string // users created in the destination
	Updated   []string // users whose destination record differed and was overwritten
	Unchanged int      // users already identical
	Rules     int      // rules in the destination after the copy
	RulesSet  bool     // whether the rule set had to be replaced
	Hash      string   // content hash both stores agree on
}

// Migrate copies every user (password hashes as they are, labels, grants,
// expiry, disabled flag) and the whole rule set from src to dst. It is
// idempotent: identical users are left alone and the rules are only
// replaced when they differ. A destination user that the source lacks is
// an error (the stores would not match afterwards) unless prune is set,
// in which case it is deleted. At the end both stores' counts and content
// hashes must agree. With dryRun nothing is written and the report says
// what would change.
func Migrate(ctx context.Context, src, dst Store, prune, dryRun bool) (*MigrateReport, error) {
	srcUsers, err := src.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("read source users: %w", err)
	}
	srcRules, err := src.ListRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("read source rules: %w", err)
	}
	if _, err := acl.Compile(srcRules); err != nil {
		return nil, fmt.Errorf("source rules are invalid, fix them first: %w", err)
	}
	dstUsers, err := dst.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("read destination users: %w", err)
	}
	dstRules, err := dst.ListRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("read destination rules: %w", err)
	}
	inSrc := make(map[string]bool, len(srcUsers))
	for _, u := range srcUsers {
		inSrc[u.Username] = true
	}
	var extra []string
	for _, u := range dstUsers {
		if !inSrc[u.Username] {
			extra = append(extra, u.Username)
		}
	}
	if len(extra) > 0 && !prune {
		return nil, fmt.Errorf("the destination has %d user(s) the source lacks (%s); pass --prune to delete them", len(extra), strings.Join(firstN(extra, 5), ", "))
	}
	existing := make(map[string]User, len(dstUsers))
	for _, u := range dstUsers {
		existing[u.Username] = u
	}

	rep := &MigrateReport{}
	for i := range srcUsers {
		u := srcUsers[i]
		old, ok := existing[u.Username]
		switch {
		case !ok:
			rep.Created = append(rep.Created, u.Username)
			if !dryRun {
				if err := dst.CreateUser(ctx, &u); err != nil {
					return rep, fmt.Errorf("create user %s: %w", u.Username, err)
				}
			}
		case canonicalUser(&old) != canonicalUser(&u):
			rep.Updated = append(rep.Updated, u.Username)
			if !dryRun {
				_, err := dst.UpdateUser(ctx, u.Username, func(d *User) error {
					d.PasswordHash, d.Labels, d.Grants = u.PasswordHash, u.Labels, u.Grants
					d.ExpiresAt, d.Disabled = u.ExpiresAt, u.Disabled
					return nil
				})
				if err != nil {
					return rep, fmt.Errorf("update user %s: %w", u.Username, err)
				}
			}
		default:
			rep.Unchanged++
		}
	}
	if !dryRun {
		for _, name := range extra {
			if err := dst.DeleteUser(ctx, name); err != nil {
				return rep, fmt.Errorf("delete user %s: %w", name, err)
			}
		}
	}
	rep.Rules = len(srcRules)
	if canonicalRules(srcRules) != canonicalRules(dstRules) {
		rep.RulesSet = true
		if !dryRun {
			if err := dst.ReplaceRules(ctx, srcRules); err != nil {
				return rep, fmt.Errorf("replace rules: %w", err)
			}
		}
	}
	if dryRun {
		return rep, nil
	}
	want, err := ContentHash(ctx, src)
	if err != nil {
		return rep, err
	}
	got, err := ContentHash(ctx, dst)
	if err != nil {
		return rep, err
	}
	if got != want {
		return rep, fmt.Errorf("verification failed: source hash %s, destination hash %s (was the source changed during the copy?)", want, got)
	}
	rep.Hash = want
	return rep, nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clip(s[:n]), "…")
	}
	return s
}

// canonical forms leave out bookkeeping (created/updated times, revision)
// and normalise what backends may represent differently (nil vs empty).
type canonUser struct {
	Username string              `json:"u"`
	Hash     string              `json:"h"`
	Labels   map[string][]string `json:"l,omitempty"`
	Grants   []canonGrant        `json:"g,omitempty"`
	Expires  int64               `json:"e,omitempty"`
	Disabled bool                `json:"d,omitempty"`
}

type canonGrant struct {
	Pattern string   `json:"p"`
	Actions []string `json:"a"`
	Expires int64    `json:"e,omitempty"`
}

func ms(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}

func canonicalUser(u *User) string {
	c := canonUser{Username: u.Username, Hash: u.PasswordHash, Expires: ms(u.ExpiresAt), Disabled: u.Disabled}
	for k, v := range u.Labels {
		if len(v) > 0 {
			if c.Labels == nil {
				c.Labels = map[string][]string{}
			}
			c.Labels[k] = v
		}
	}
	for _, g := range u.Grants {
		c.Grants = append(c.Grants, canonGrant{Pattern: g.Pattern, Actions: g.Actions, Expires: ms(g.ExpiresAt)})
	}
	b, _ := json.Marshal(c) // maps marshal with sorted keys
	return string(b)
}

func canonicalRules(rules []acl.Rule) string {
	type canonRule struct {
		Seq     int64     `json:"s"`
		Match   acl.Match `json:"m"`
		Actions []string  `json:"a"`
		Deny    bool      `json:"d,omitempty"`
		Comment string    `json:"c,omitempty"`
		Expires int64     `json:"e,omitempty"`
	}
	out := make([]canonRule, len(rules))
	for i, r := range rules {
		m := r.Match
		if len(m.Labels) == 0 {
			m.Labels = nil
		}
		out[i] = canonRule{Seq: r.Seq, Match: m, Actions: r.Actions, Deny: r.Actions != nil && len(r.Actions) == 0, Comment: r.Comment, Expires: ms(r.ExpiresAt)}
	}
	slices.SortFunc(out, func(a, b canonRule) int { return int(min(max(a.Seq-b.Seq, -1), 1)) })
	b, _ := json.Marshal(out)
	return string(b)
}

// ContentHash is a SHA-256 over every user and rule in canonical form,
// independent of the backend: two stores with the same content have the
// same hash.
func ContentHash(ctx context.Context, st Store) (string, error) {
	users, err := st.ListUsers(ctx)
	if err != nil {
		return "", err
	}
	rules, err := st.ListRules(ctx)
	if err != nil {
		return "", err
	}
	slices.SortFunc(users, func(a, b User) int { return strings.Compare(a.Username, b.Username) })
	h := sha256.New()
	for i := range users {
		h.Write([]byte(canonicalUser(&users[i])))
		h.Write([]byte{'\n'})
	}
	h.Write([]byte(canonicalRules(rules)))
	return hex.EncodeToString(h.Sum(nil)), nil
}
