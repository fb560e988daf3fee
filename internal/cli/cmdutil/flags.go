package cmdutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/when"
)

// ParseExpiry parses an optional --expires; it must lie in the future.
func ParseExpiry(flag, s string, now time.Time) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := when.Parse(s, now)
	if err != nil {
		return nil, &FlagError{Err: fmt.Errorf("--%s: %w", flag, err)}
	}
	if !t.After(now) {
		return nil, FlagErrorf("--%s %s lies in the past", flag, s)
	}
	t = t.UTC().Truncate(time.Millisecond)
	return &t, nil
}

// ParseLabels turns KEY=VALUE flags into a label map.
func ParseLabels(flags []string) (map[string][]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := map[string][]string{}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, FlagErrorf("label %q: want KEY=VALUE", kv)
		}
		if err := store.ValidateLabel(k, v); err != nil {
			return nil, &FlagError{Err: err}
		}
		if !slices.Contains(labels[k], v) {
			labels[k] = append(labels[k], v)
		}
	}
	return labels, nil
}

// ParseActions parses "pull,push" into a validated action list.
func ParseActions(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		switch a {
		case acl.ActionPull, acl.ActionPush, acl.ActionDelete, acl.ActionAll:
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		case "":
		default:
			return nil, FlagErrorf("--actions: unknown action %q (use pull, push, delete or *)", a)
		}
	}
	if len(out) == 0 {
		return nil, FlagErrorf("--actions is required: pull, push, delete or * (comma separated)")
	}
	return out, nil
}

// ValidateUsernameArg checks a NAME argument.
func ValidateUsernameArg(name string) error {
	if err := store.ValidateUsername(name); err != nil {
		return &FlagError{Err: err}
	}
	return nil
}

// AddDryRunFlag registers --dry-run.
func AddDryRunFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "dry-run", false, "show what would change and write nothing")
}

// Would prefixes a change message with "Would " in dry-run mode: "Would
// create user waldi" instead of "Created user waldi".
func Would(dryRun bool, done, planned string) string {
	if dryRun {
		return "Would " + planned
	}
	return done
}

// TimePtrEqual reports whether two optional times are both unset or equal.
func TimePtrEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// UpdateUser applies fn to the stored user and writes it back; in dry-run
// mode it applies fn to a copy and writes nothing. Errors are one line.
func UpdateUser(ctx context.Context, st store.Store, name string, dryRun bool, fn func(*store.User) error) (*store.User, error) {
	if dryRun {
		u, err := st.GetUser(ctx, name)
		if err != nil {
			return nil, StoreErr(err, "user "+name)
		}
		if err := fn(u); err != nil {
			return nil, err
		}
		return u, nil
	}
	var fnErr error
	u, err := st.UpdateUser(ctx, name, func(u *store.User) error {
		fnErr = fn(u)
		return fnErr
	})
	if fnErr != nil && err != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, StoreErr(err, "user "+name)
	}
	return u, nil
}

// ReadFileOrStdin reads path, or standard input when path is "-".
func ReadFileOrStdin(ios *IOStreams, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(ios.In, 64<<20))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return data, nil
}
