// Package dockerauth reads a cesanta/docker_auth auth_config.yml: the
// static users and acl regctl can carry over, and a note for everything it
// cannot (`regctl import docker-auth` writes them to the store).
package dockerauth

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/passwd"
	"github.com/regctl/regctl/internal/store"
)

// Config is what regctl can take from a docker_auth config.
type Config struct {
	// Users in file order that can be imported.
	Users []store.User
	// HasACL: the file has a static acl section (possibly empty).
	HasACL bool
	// Rules are the static acl, seq 10, 20, ... in file order.
	Rules []acl.Rule
	// Notes say what could not be carried over ("Not carried over: ...")
	// or was rewritten ("Rewritten: ..."), one line each, in file order.
	Notes []string
	// Checks point at acl entries that carry over unchanged but are
	// probably mistakes ("Note: ..."), one line each, in file order.
	Checks []string
}

// Parse reads a docker_auth auth_config.yml. It fails on YAML
// errors and on an acl that cannot be carried over exactly; everything
// else it cannot use becomes a note.
func Parse(data []byte) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a docker_auth config: want a YAML mapping with users and acl sections")
	}
	c := &Config{}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i].Value, top.Content[i+1]
		switch key {
		case "users":
			if err := c.parseUsers(val); err != nil {
				return nil, fmt.Errorf("users: %w", err)
			}
		case "acl":
			c.HasACL = true
			if err := c.parseACL(val); err != nil {
				return nil, err
			}
		default:
			c.Notes = append(c.Notes, sectionNote(key, val))
		}
	}
	if len(c.Users) == 0 && !c.HasACL && len(c.Notes) == 0 {
		return nil, errors.New("not a docker_auth config: no users or acl section")
	}
	return c, nil
}

// sectionNote explains why a section is not carried over and what to do.
func sectionNote(key string, val *yaml.Node) string {
	get := func(path ...string) string {
		n := val
		for _, p := range path {
			if n == nil || n.Kind != yaml.MappingNode {
				return ""
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
			n = next
		}
		if n == nil || n.Kind != yaml.ScalarNode {
			return ""
		}
		return n.Value
	}
	switch key {
	case "server":
		s := "Not carried over: server: run regctl serve --listen HOST:PORT behind the TLS reverse proxy instead"
		if a := get("addr"); a != "" {
			s += fmt.Sprintf(" (docker_auth listened on %s)", a)
		}
		return s
	case "token":
		s := "Not carried over: token: pass regctl serve --issuer"
		if is := get("issuer"); is != "" {
			s += fmt.Sprintf(" %q", is)
		} else {
			s += " ISSUER"
		}
		if e := get("expiration"); e != "" {
			s += " --token-lifetime " + e + "s"
		}
		return s + "; signing keys come from regctl keys generate (the registry's rootcertbundle changes)"
	case "mongo_auth", "acl_mongo":
		what, coll := "users", "users"
		if key == "acl_mongo" {
			what, coll = "rules", "acl"
		}
		db := cmp.Or(get("dial_info", "database"), "DB")
		s := fmt.Sprintf("Not carried over: %s: %s in MongoDB need no import: run regctl with --store mongodb://HOST/%s and it reads them as they are", key, what, db)
		if c := get("collection"); c != "" && c != coll {
			s += fmt.Sprintf(" (regctl reads the collection %q, not %q)", coll, c)
		}
		return s
	case "ldap_auth", "google_auth", "github_auth", "oidc_auth", "gitlab_auth", "ext_auth", "plugin_authn",
		"xorm_auth", "keycloak_auth", "gitea_auth", "bitbucket_auth", "couchdb_auth", "sql_auth":
		return "Not carried over: " + key + ": regctl authenticates only the users in its store (add them with regctl user add)"
	case "ext_authz", "plugin_authz", "casbin_authz", "acl_xorm", "acl_couchdb":
		return "Not carried over: " + key + ": regctl authorizes only with its rules and per-user grants"
	}
	return "Not carried over: " + key + ": unknown section"
}

func (c *Config) parseUsers(val *yaml.Node) error {
	if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
		return nil
	}
	if val.Kind != yaml.MappingNode {
		return errors.New("want a mapping of user names to {password, labels}")
	}
	for i := 0; i+1 < len(val.Content); i += 2 {
		name, body := val.Content[i].Value, val.Content[i+1]
		if name == "" {
			c.Notes = append(c.Notes, `Not carried over: user "" (anonymous access): run regctl serve --allow-anonymous to decide requests without credentials by the rules, as account ""`)
			continue
		}
		if err := store.ValidateUsername(name); err != nil {
			c.Notes = append(c.Notes, fmt.Sprintf("Not carried over: user %q: %v", name, err))
			continue
		}
		var entry map[string]yaml.Node
		if err := body.Decode(&entry); err != nil {
			c.Notes = append(c.Notes, fmt.Sprintf("Not carried over: user %s: want {password, labels}: %v", name, err))
			continue
		}
		u := store.User{Username: name}
		ok := true
		for _, k := range slices.Sorted(maps.Keys(entry)) {
			n := entry[k]
			switch k {
			case "password":
				u.PasswordHash = n.Value
			case "labels":
				if err := n.Decode(&u.Labels); err != nil {
					c.Notes = append(c.Notes, fmt.Sprintf("Not carried over: user %s: labels: want {KEY: [VALUE, ...]}: %v", name, err))
					ok = false
				}
			default:
				c.Notes = append(c.Notes, fmt.Sprintf("Not carried over: user %s: field %q (imported without it)", name, k))
			}
		}
		if !ok {
			continue
		}
		if u.PasswordHash == "" {
			c.Notes = append(c.Notes, fmt.Sprintf("Not carried over: user %s: no password hash (add the user with regctl user add %s)", name, name))
			continue
		}
		if _, err := passwd.CheckHash(u.PasswordHash); err != nil {
			c.Notes = append(c.Notes, fmt.Sprintf("Not carried over: user %s: password: %v", name, err))
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(u.Labels)) {
			for _, v := range u.Labels[k] {
				if err := store.ValidateLabel(k, v); err != nil {
					c.Notes = append(c.Notes, fmt.Sprintf("Not carried over: user %s: %v", name, err))
					ok = false
				}
			}
			if len(u.Labels[k]) == 0 {
				delete(u.Labels, k)
			}
		}
		if ok {
			c.Users = append(c.Users, u)
		}
	}
	return nil
}

// dockerAuthEntry is one static acl entry.
type dockerAuthEntry struct {
	Match   map[string]yaml.Node `yaml:"match"`
	Actions *[]string            `yaml:"actions"`
	Comment *string              `yaml:"comment"`
}

func (c *Config) parseACL(val *yaml.Node) error {
	if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
		return nil
	}
	if val.Kind != yaml.SequenceNode {
		return errors.New("acl: want a list of {match, actions, comment}")
	}
	var problems []string
	for i, n := range val.Content {
		seq := int64(10 * (i + 1))
		where := fmt.Sprintf("acl entry %d (seq %d)", i+1, seq)
		if n.Kind != yaml.MappingNode {
			problems = append(problems, where+": want {match, actions, comment}")
			continue
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k := n.Content[j].Value; k != "match" && k != "actions" && k != "comment" {
				problems = append(problems, fmt.Sprintf("%s: unknown key %q", where, k))
			}
		}
		var e dockerAuthEntry
		if err := n.Decode(&e); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		r := acl.Rule{Seq: seq}
		if e.Comment != nil {
			r.Comment = *e.Comment
		}
		if e.Actions == nil {
			problems = append(problems, where+": no actions (docker_auth requires them)")
		} else {
			r.Actions = append([]string{}, *e.Actions...)
			if note := acl.MixedActionsNote(r.Actions); note != "" {
				c.Checks = append(c.Checks, fmt.Sprintf("Note: %s: %s", where, note))
			}
		}
		str := func(k string) *string {
			node, ok := e.Match[k]
			if !ok {
				return nil
			}
			v := node.Value
			if node.Kind != yaml.ScalarNode {
				problems = append(problems, fmt.Sprintf("%s: match.%s: want a string", where, k))
				return nil
			}
			if k != "ip" {
				if nv, changed := unanchorRegex(v); changed {
					c.Notes = append(c.Notes, fmt.Sprintf("Rewritten: %s: match.%s %s to %s (regctl anchors regular expressions, docker_auth does not)", where, k, v, nv))
					v = nv
				}
			}
			return &v
		}
		for _, k := range slices.Sorted(maps.Keys(e.Match)) {
			switch k {
			case "account", "type", "name", "service", "ip":
			case "labels":
				var labels map[string]string
				node := e.Match[k]
				if err := node.Decode(&labels); err != nil {
					problems = append(problems, fmt.Sprintf("%s: match.labels: want {KEY: PATTERN}: %v", where, err))
					continue
				}
				for _, lk := range slices.Sorted(maps.Keys(labels)) {
					lv := labels[lk]
					if nv, changed := unanchorRegex(lv); changed {
						c.Notes = append(c.Notes, fmt.Sprintf("Rewritten: %s: match.labels.%s %s to %s (regctl anchors regular expressions, docker_auth does not)", where, lk, lv, nv))
						labels[lk] = nv
					}
				}
				r.Match.Labels = labels
			default:
				problems = append(problems, fmt.Sprintf("%s: match.%s is not supported by regctl; dropping it would widen the rule", where, k))
			}
		}
		r.Match.Account, r.Match.Type, r.Match.Name = str("account"), str("type"), str("name")
		r.Match.Service, r.Match.IP = str("service"), str("ip")
		if r.Actions != nil {
			if err := r.Validate(); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s", where, strings.ReplaceAll(err.Error(), "\n", "; ")))
			}
		}
		c.Rules = append(c.Rules, r)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the acl cannot be carried over, nothing imported: %s", strings.Join(problems, "; "))
	}
	return nil
}

// unanchorRegex rewrites a docker_auth /regex/, which matches anywhere in
// the value, to the anchored form with the same meaning. A regex that is
// already anchored at both ends (and has no alternation) stays as is.
func unanchorRegex(p string) (string, bool) {
	if len(p) <= 2 || p[0] != '/' || p[len(p)-1] != '/' {
		return p, false
	}
	body := p[1 : len(p)-1]
	if strings.HasPrefix(body, "^") && strings.HasSuffix(body, "$") && !strings.HasSuffix(body, `\$`) && !strings.Contains(body, "|") {
		return p, false
	}
	return "/.*(?:" + body + ").*/", true
}
