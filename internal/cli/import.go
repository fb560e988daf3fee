package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// NewCmdImport builds `regctl import`.
func NewCmdImport(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "import",
		Short:   "Import users and rules from other tools",
		Example: "  regctl import docker-auth /etc/docker_auth/auth_config.yml --dry-run",
	}
	cmd.AddCommand(NewCmdImportDockerAuth(f, nil))
	return cmd
}

// ImportDockerAuthOptions are `regctl import docker-auth`'s settings.
type ImportDockerAuthOptions struct {
	File   string
	Config *DockerAuthConfig
	Update bool
	DryRun bool
}

// NewCmdImportDockerAuth builds `regctl import docker-auth`.
func NewCmdImportDockerAuth(f *Factory, runF func(context.Context, *ImportDockerAuthOptions) error) *cobra.Command {
	o := &ImportDockerAuthOptions{}
	cmd := &cobra.Command{
		Use:   "docker-auth FILE",
		Short: "Import the static users and ACL of a cesanta/docker_auth auth_config.yml",
		Long: `Import a cesanta/docker_auth configuration file ('-' for stdin): its static
users (bcrypt hashes as they are, and labels) and its static acl list (seq
10, 20, ... in file order; comments kept). docker_auth matches /regular
expressions/ unanchored and regctl anchors them, so each regex is rewritten
to /.*(?:RE).*/ to keep its meaning, and reported.

Everything else is reported on stderr instead of being dropped silently:
other authentication and authorization backends, server and token settings
(with the regctl serve flags that replace them), users that cannot be
imported. An acl entry whose actions list * among other actions is imported
as it is, and reported: as in docker_auth, only actions that are exactly *
allow everything. A docker_auth MongoDB (mongo_auth, acl_mongo) needs no import:
point --store at it and regctl reads its users and acl collections as they
are.

Users that already exist are reported and skipped, and the acl is not
imported into a store that already has different rules, unless --update:
then existing users get the file's password hash and labels (their grants,
expiry and disabled state are kept) and the file's acl replaces all rules.
Nothing is written when the acl is invalid or uses conditions regctl cannot
carry over exactly.`,
		Example: `  regctl import docker-auth auth_config.yml --dry-run
  regctl import docker-auth auth_config.yml
  regctl import docker-auth auth_config.yml --update`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			data, err := readFileOrStdin(f.IO, o.File)
			if err != nil {
				return err
			}
			if o.Config, err = ParseDockerAuth(data); err != nil {
				return fmt.Errorf("%s: %w", o.File, err)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return importDockerAuthRun(cmd.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.Update, "update", false, "overwrite existing users' password hash and labels, and replace all rules with the file's acl")
	addDryRunFlag(cmd, &o.DryRun)
	return cmd
}

// DockerAuthConfig is what regctl can take from a docker_auth config.
type DockerAuthConfig struct {
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

// ParseDockerAuth reads a docker_auth auth_config.yml. It fails on YAML
// errors and on an acl that cannot be carried over exactly; everything
// else it cannot use becomes a note.
func ParseDockerAuth(data []byte) (*DockerAuthConfig, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a docker_auth config: want a YAML mapping with users and acl sections")
	}
	c := &DockerAuthConfig{}
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
	case "mongo_auth":
		db := get("dial_info", "database")
		if db == "" {
			db = "DB"
		}
		s := fmt.Sprintf("Not carried over: mongo_auth: users in MongoDB need no import: run regctl with --store mongodb://HOST/%s and it reads them as they are", db)
		if coll := get("collection"); coll != "" && coll != "users" {
			s += fmt.Sprintf(" (regctl reads the collection \"users\", not %q)", coll)
		}
		return s
	case "acl_mongo":
		db := get("dial_info", "database")
		if db == "" {
			db = "DB"
		}
		s := fmt.Sprintf("Not carried over: acl_mongo: rules in MongoDB need no import: run regctl with --store mongodb://HOST/%s and it reads them as they are", db)
		if coll := get("collection"); coll != "" && coll != "acl" {
			s += fmt.Sprintf(" (regctl reads the collection \"acl\", not %q)", coll)
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

func (c *DockerAuthConfig) parseUsers(val *yaml.Node) error {
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
		if _, err := checkBcryptHash(u.PasswordHash); err != nil {
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

func (c *DockerAuthConfig) parseACL(val *yaml.Node) error {
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
				problems = append(problems, fmt.Sprintf("%s: %v", where, oneLine(err)))
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
	if !(len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/') {
		return p, false
	}
	body := p[1 : len(p)-1]
	if strings.HasPrefix(body, "^") && strings.HasSuffix(body, "$") && !strings.HasSuffix(body, `\$`) && !strings.Contains(body, "|") {
		return p, false
	}
	return "/.*(?:" + body + ").*/", true
}

func importDockerAuthRun(ctx context.Context, f *Factory, o *ImportDockerAuthOptions) error {
	c := o.Config
	out := f.IO.ErrOut
	return withStore(ctx, f, func(st store.Store) error {
		var created, updated, skipped int
		now := store.Truncate(f.Now())
		for _, u := range c.Users {
			old, err := st.GetUser(ctx, u.Username)
			switch {
			case errors.Is(err, store.ErrNotFound):
				u.CreatedAt, u.UpdatedAt = now, now
				if !o.DryRun {
					if err := st.CreateUser(ctx, &u); err != nil {
						return storeErr(err, "user "+u.Username)
					}
				}
				created++
				fmt.Fprintf(out, "%s user %s%s\n", would(o.DryRun, "Imported", "import"), u.Username, labelsSuffix(u.Labels))
			case err != nil:
				return storeErr(err, "user "+u.Username)
			case old.PasswordHash == u.PasswordHash && labelsEqual(old.Labels, u.Labels):
				fmt.Fprintf(out, "No change: user %s exists with the same password hash and labels\n", u.Username)
			case !o.Update:
				skipped++
				fmt.Fprintf(out, "Skipped user %s: already exists (pass --update to overwrite its password hash and labels)\n", u.Username)
			default:
				if _, err := updateUser(ctx, st, u.Username, o.DryRun, func(x *store.User) error {
					x.PasswordHash, x.Labels = u.PasswordHash, u.Labels
					return nil
				}); err != nil {
					return err
				}
				updated++
				fmt.Fprintf(out, "%s user %s: password hash and labels%s\n", would(o.DryRun, "Updated", "update"), u.Username, labelsSuffix(u.Labels))
			}
		}
		ruleMsg, err := importRules(ctx, f, st, o)
		if err != nil {
			return err
		}
		for _, n := range c.Notes {
			fmt.Fprintln(out, n)
		}
		for _, n := range c.Checks {
			fmt.Fprintln(out, n)
		}
		summary := fmt.Sprintf("users: %d new, %d updated, %d skipped; rules: %s; %d item(s) not carried over or rewritten (see above)",
			created, updated, skipped, ruleMsg, len(c.Notes))
		if len(c.Checks) > 0 {
			summary += fmt.Sprintf("; %d rule(s) to check (see above)", len(c.Checks))
		}
		if o.DryRun {
			summary = "Dry run, nothing written: " + summary
		} else {
			summary = "Done: " + summary
		}
		fmt.Fprintln(out, summary)
		return nil
	})
}

// importRules imports the static acl and returns a summary.
func importRules(ctx context.Context, f *Factory, st store.Store, o *ImportDockerAuthOptions) (string, error) {
	c, out := o.Config, f.IO.ErrOut
	if !c.HasACL {
		return "no acl in the file", nil
	}
	if _, err := acl.Compile(c.Rules); err != nil {
		return "", oneLine(err)
	}
	old, err := st.ListRules(ctx)
	if err != nil {
		return "", storeErr(err, "rules")
	}
	diff := diffRules(old, c.Rules)
	switch {
	case len(diff) == 0:
		return fmt.Sprintf("the store already holds the acl's %d", len(c.Rules)), nil
	case len(old) > 0 && !o.Update:
		fmt.Fprintf(out, "Skipped the acl (%d rule(s)): the store already has %d different rule(s) (pass --update to replace them)\n", len(c.Rules), len(old))
		return "acl skipped", nil
	}
	if !o.DryRun {
		if err := st.ReplaceRules(ctx, c.Rules); err != nil {
			return "", storeErr(err, "rules")
		}
	}
	fmt.Fprintf(out, "%s %d rule(s) with the acl's %d rule(s):\n", would(o.DryRun, "Replaced", "replace"), len(old), len(c.Rules))
	for _, line := range diff {
		fmt.Fprintln(out, line)
	}
	return fmt.Sprintf("%d imported", len(c.Rules)), nil
}

func labelsSuffix(labels map[string][]string) string {
	if len(labels) == 0 {
		return ""
	}
	return " (labels " + strings.Join(labelPairs(labels), ", ") + ")"
}

func labelsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
