package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/mongo"
	"github.com/regctl/regctl/internal/store/sqlite"
)

// Factory holds what commands depend on. Fields are lazy, so a command only
// pays for what it calls: `keys generate` never dials a store.
type Factory struct {
	IO     *IOStreams
	Config *viper.Viper
	Now    func() time.Time
	// Location is the time zone dates are shown in (time.Local when nil);
	// tests pin it. JSON and YAML output is always UTC.
	Location *time.Location
	// Store opens the configured store (--store, REGCTL_STORE, or the
	// config file's store key).
	Store func(ctx context.Context) (store.Store, error)
	// StorePointer is a file holding the store URL to use when none is
	// configured: `regctl init` leaves the deployment's there
	// (provision.StorePointer), so that commands on the host find it.
	// Empty: none.
	StorePointer string
	// DefaultStore is the store URL used when none is configured and
	// there is no StorePointer file (DefaultStoreURL in production; tests
	// point it at a temp dir).
	DefaultStore string
	// Logger returns the logger configured by --log-level/--log-format.
	Logger func() *slog.Logger
	// AppVersion is regctl's version as the build stamped it (cli.Version),
	// for the token server's metrics.
	AppVersion string
}

// NewFactory returns the production factory.
func NewFactory(ios *IOStreams) *Factory {
	f := &Factory{IO: ios, Config: NewViper(), Now: time.Now, StorePointer: provision.StorePointer, DefaultStore: DefaultStoreURL()}
	f.Store = func(ctx context.Context) (store.Store, error) {
		url, err := f.StoreURL()
		if err != nil {
			return nil, err
		}
		return OpenStore(ctx, url)
	}
	f.Logger = func() *slog.Logger { return NewLogger(f) }
	return f
}

// NewViper returns the configuration that flags, REGCTL_* variables and
// --config feed.
func NewViper() *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix("REGCTL")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	return v
}

// StoreURL is the store commands use: --store, REGCTL_STORE or the config
// file's store key; else the one `regctl init` pointed this host at;
// else DefaultStore.
func (f *Factory) StoreURL() (string, error) {
	if url := f.Config.GetString("store"); url != "" {
		return url, nil
	}
	if f.StorePointer != "" {
		b, err := os.ReadFile(f.StorePointer)
		switch {
		case err == nil:
			if url := strings.TrimSpace(string(b)); url != "" {
				return url, nil
			}
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("read the deployment's store from %s (left by regctl init): %w; run as root, or pass --store", f.StorePointer, err)
		}
	}
	return f.DefaultStore, nil
}

// DefaultStoreURL is the embedded store used when none is configured:
// /var/lib/regctl/regctl.db for root, else regctl/regctl.db under
// $XDG_DATA_HOME (~/.local/share).
func DefaultStoreURL() string {
	if os.Geteuid() == 0 {
		return "sqlite:///var/lib/regctl/regctl.db"
	}
	dir := os.Getenv("XDG_DATA_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "sqlite:regctl.db"
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return "sqlite://" + filepath.Join(dir, "regctl", "regctl.db")
}

// OpenStore opens a store from its URL: mongodb:// or mongodb+srv:// for
// MongoDB (or FerretDB); sqlite:///path/regctl.db (or a path, see
// sqlite.ParseURL) for the embedded SQLite store.
func OpenStore(ctx context.Context, url string) (store.Store, error) {
	switch {
	case url == "":
		return nil, FlagErrorf("no store configured: pass --store URL or set REGCTL_STORE (for example sqlite:///var/lib/regctl/regctl.db or mongodb://127.0.0.1:27017/regctl)")
	case strings.HasPrefix(url, "mongodb://"), strings.HasPrefix(url, "mongodb+srv://"):
		return mongo.Open(ctx, url)
	}
	if path, ok := sqlite.ParseURL(url); ok {
		return sqlite.Open(ctx, path)
	}
	scheme, _, _ := strings.Cut(url, ":")
	return nil, FlagErrorf("unsupported store URL scheme %q: use sqlite:///PATH/regctl.db or mongodb://HOST/DB", scheme)
}

// NewLogger is the logger --log-level and --log-format ask for, on ErrOut.
func NewLogger(f *Factory) *slog.Logger { return slog.New(NewLogHandler(f, f.IO.ErrOut)) }

// NewLogHandler is the handler --log-level and --log-format ask for,
// writing to w.
func NewLogHandler(f *Factory, w io.Writer) slog.Handler {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.Config.GetString("log-level"))); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if f.Config.GetString("log-format") == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// Loc returns the time zone for displayed dates.
func (f *Factory) Loc() *time.Location { return f.Deps().Loc() }

// WithStore opens f's store, runs fn and closes the store.
func WithStore(ctx context.Context, f *Factory, fn func(store.Store) error) error {
	return f.Deps().WithStore(ctx, fn)
}

// Deps are the factory's pieces a run function uses. The options of the
// commands that need more than one of them embed them, so that every run function
// takes (ctx, opts).
type Deps struct {
	IO  *IOStreams
	Now func() time.Time
	// Location is the time zone dates are shown in (time.Local when nil).
	Location *time.Location
	Store    func(ctx context.Context) (store.Store, error)
	Logger   func() *slog.Logger
}

// Deps returns the factory's dependencies for a command's options.
func (f *Factory) Deps() Deps {
	return Deps{IO: f.IO, Now: f.Now, Location: f.Location, Store: f.Store, Logger: f.Logger}
}

// Loc returns the time zone for displayed dates.
func (d Deps) Loc() *time.Location {
	if d.Location != nil {
		return d.Location
	}
	return time.Local
}

// Colors are on when standard output is a terminal (IOStreams.ColorEnabled).
func (d Deps) Colors() Colors { return Colors{On: d.IO.ColorEnabled()} }

// WithStore opens the store, runs fn and closes the store.
func (d Deps) WithStore(ctx context.Context, fn func(store.Store) error) error {
	st, err := d.Store(ctx)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return fmt.Errorf("%w (check that --store or REGCTL_STORE names a store that is running and reachable)", err)
		}
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.Close(cctx)
	}()
	return fn(st)
}

// StoreErr turns store sentinels into one actionable line ("user waldi
// not found"); errors.Is still finds the sentinel.
func StoreErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &storeError{msg: what + " not found", err: err}
	case errors.Is(err, store.ErrExists):
		return &storeError{msg: what + " already exists", err: err}
	}
	return err
}

// storeError is a store sentinel said in the command's terms.
type storeError struct {
	msg string
	err error
}

func (e *storeError) Error() string { return e.msg }
func (e *storeError) Unwrap() error { return e.err }

// SetupRoot gives the root command what every command shares: the global
// flags (--config, --store, --log-level, --log-format), bound to f.Config,
// loading --config before any command runs, and flag errors as FlagError.
func SetupRoot(root *cobra.Command, f *Factory) {
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return LoadConfig(cmd, f)
	}
	pf := root.PersistentFlags()
	pf.String("config", "", "config file (YAML); keys are the long flag names")
	pf.String("store", "", "store URL: sqlite:///PATH/regctl.db or mongodb://HOST/DB (env REGCTL_STORE)")
	pf.String("log-level", "info", "log level: debug, info, warn, error")
	pf.String("log-format", "text", "log format: text or json")
	for _, name := range []string{"store", "log-level", "log-format"} {
		_ = f.Config.BindPFlag(name, pf.Lookup(name))
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &FlagError{Err: err} })
}

// LoadConfig reads --config (if any) and rejects keys no command knows. A
// key under its old name (config.Renamed) gets a warning, and an error if
// the file sets its current name too.
func LoadConfig(cmd *cobra.Command, f *Factory) error {
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("REGCTL_CONFIG")
	}
	if path == "" {
		return nil
	}
	f.Config.SetConfigFile(path)
	f.Config.SetConfigType("yaml")
	if err := f.Config.ReadInConfig(); err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(fl *pflag.Flag) { known[fl.Name] = true })
		c.PersistentFlags().VisitAll(func(fl *pflag.Flag) { known[fl.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd.Root())
	var unknown []string
	keys := f.Config.AllKeys()
	sort.Strings(keys)
	for _, k := range keys {
		if !f.Config.InConfig(k) {
			continue
		}
		if current, ok := config.Renamed(k); ok {
			if f.Config.InConfig(current) {
				return fmt.Errorf("config %s: %s and %s are the same setting: keep %s", path, k, current, current)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: config %s: %s is deprecated and goes in the next release: write %s\n", path, k, current)
			continue
		}
		if !known[k] && !config.Known(k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config %s: unknown key(s) %s", path, strings.Join(unknown, ", "))
	}
	return nil
}
