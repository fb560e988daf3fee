package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/regctl/regctl/internal/store"
)

// applicationID is written to the database header (PRAGMA application_id)
// so that tools such as file(1) can tell a regctl database: "rgct".
const applicationID = 0x72676374

// migrations are the schema changes in order; migrations[i] brings the
// schema to version i+1. Never edit a released migration: append one.
//
// Times are Unix milliseconds (INTEGER, NULL when unset). Labels and
// grants are JSON columns, written and read whole with their user, so
// value order, grant order and nil-versus-empty action lists round-trip
// exactly; rule match objects and action lists are JSON too (actions NULL
// for a nil list, "[]" for an explicit deny). The rules_version counter in
// meta is bumped by triggers on every change to rules, in the changing
// transaction, so a reader can poll it to notice any rule change, even one
// made with the sqlite3 shell.
var migrations = []string{
	// Version 1.
	`
CREATE TABLE users (
	username      TEXT PRIMARY KEY NOT NULL,
	password_hash TEXT NOT NULL DEFAULT '',
	labels        TEXT CHECK (labels IS NULL OR json_valid(labels)),
	grants        TEXT CHECK (grants IS NULL OR json_valid(grants)),
	expires_at    INTEGER,
	disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
	created_at    INTEGER,
	updated_at    INTEGER,
	rev           INTEGER NOT NULL DEFAULT 1
) STRICT, WITHOUT ROWID;

CREATE TABLE rules (
	seq        INTEGER PRIMARY KEY NOT NULL,
	match      TEXT NOT NULL CHECK (json_valid(match)),
	actions    TEXT CHECK (actions IS NULL OR json_valid(actions)),
	comment    TEXT NOT NULL DEFAULT '',
	expires_at INTEGER
) STRICT;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY NOT NULL,
	value ANY
) STRICT, WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('rules_version', 0);

CREATE TRIGGER rules_version_insert AFTER INSERT ON rules BEGIN
	UPDATE meta SET value = value + 1 WHERE key = 'rules_version';
END;
CREATE TRIGGER rules_version_update AFTER UPDATE ON rules BEGIN
	UPDATE meta SET value = value + 1 WHERE key = 'rules_version';
END;
CREATE TRIGGER rules_version_delete AFTER DELETE ON rules BEGIN
	UPDATE meta SET value = value + 1 WHERE key = 'rules_version';
END;
`,
	// Version 2: the rule history the token server reloads from
	// (RuleChangesSince). Every rule row carries the rules_version of its
	// last change, and rules_removed the version at which each seq was
	// removed (kept until the seq is added again). rules_epoch identifies
	// this database's history.
	`
ALTER TABLE rules ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX rules_by_version ON rules (version);

CREATE TABLE rules_removed (
	seq     INTEGER PRIMARY KEY NOT NULL,
	version INTEGER NOT NULL
) STRICT;
CREATE INDEX rules_removed_by_version ON rules_removed (version);

INSERT INTO meta (key, value) VALUES ('rules_epoch', (random() & 9223372036854775807) | 1);

DROP TRIGGER rules_version_insert;
DROP TRIGGER rules_version_update;
DROP TRIGGER rules_version_delete;

CREATE TRIGGER rules_version_insert AFTER INSERT ON rules BEGIN
	UPDATE meta SET value = value + 1 WHERE key = 'rules_version';
	UPDATE rules SET version = (SELECT value FROM meta WHERE key = 'rules_version') WHERE seq = NEW.seq;
	DELETE FROM rules_removed WHERE seq = NEW.seq;
END;
-- Not fired by its own UPDATE of version, which is not in the list.
CREATE TRIGGER rules_version_update AFTER UPDATE OF seq, match, actions, comment, expires_at ON rules BEGIN
	UPDATE meta SET value = value + 1 WHERE key = 'rules_version';
	UPDATE rules SET version = (SELECT value FROM meta WHERE key = 'rules_version') WHERE seq = NEW.seq;
	INSERT OR REPLACE INTO rules_removed (seq, version)
		SELECT OLD.seq, value FROM meta WHERE key = 'rules_version' AND OLD.seq <> NEW.seq;
	DELETE FROM rules_removed WHERE seq = NEW.seq;
END;
CREATE TRIGGER rules_version_delete AFTER DELETE ON rules BEGIN
	UPDATE meta SET value = value + 1 WHERE key = 'rules_version';
	INSERT OR REPLACE INTO rules_removed (seq, version)
		SELECT OLD.seq, value FROM meta WHERE key = 'rules_version';
END;
`,
	// Version 3: the login attempt log (store.AttemptLog) that token
	// servers sharing this file hold their limits together with.
	// expires_at is Unix milliseconds.
	`
CREATE TABLE login_attempts (
	id         INTEGER PRIMARY KEY NOT NULL,
	key        TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX login_attempts_by_key ON login_attempts (key, expires_at);
CREATE INDEX login_attempts_by_expiry ON login_attempts (expires_at);
`,
}

// SchemaVersion returns the schema version this binary creates and
// supports.
func SchemaVersion() int { return len(migrations) }

// ErrSchemaTooNew matches the error Open returns for a database whose
// schema version is newer than SchemaVersion: a newer regctl wrote it.
var ErrSchemaTooNew = errors.New("database schema is newer than this regctl supports")

// newerSchemaError is the error of Open for a database written by a newer
// regctl.
type newerSchemaError struct{ have, want int }

func (e newerSchemaError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this regctl supports (%d); upgrade regctl", e.have, e.want)
}

func (e newerSchemaError) Is(target error) bool { return target == ErrSchemaTooNew }

// migrate brings the schema to SchemaVersion(), one transaction per
// migration. Each transaction is a write transaction that rereads the
// version, so processes opening the same file at once do not apply a
// migration twice.
func (s *Store) migrate(ctx context.Context) error {
	op := "open sqlite store " + s.path
	// Fast path, without the write lock: a "regctl serve" starting while
	// the CLI holds the database locked should not wait for it.
	var version int
	err := s.read(ctx, op, func(ctx context.Context) error {
		return s.reader.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations
			WHERE (SELECT application_id FROM pragma_application_id) = ?`, applicationID).Scan(&version)
	})
	switch {
	case err == nil && version > len(migrations):
		return fmt.Errorf("%s: %w", op, newerSchemaError{have: version, want: len(migrations)})
	case err == nil && version == len(migrations):
		return nil
	case errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled):
		return err
	}
	// Otherwise (no such table, foreign database, older schema) migrate.
	for {
		var done bool
		err := s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
			var err error
			done, err = s.migrateStep(ctx, tx)
			return err
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateStep applies the next pending migration in tx, or reports done
// when there is none.
func (s *Store) migrateStep(ctx context.Context, tx *sql.Tx) (done bool, err error) {
	var appID int64
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return false, err
	}
	if appID != 0 && appID != applicationID {
		return false, fmt.Errorf("not a regctl database (application_id %#x)", appID)
	}
	var hasTable int
	err = tx.QueryRowContext(ctx,
		"SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").Scan(&hasTable)
	if err != nil {
		return false, err
	}
	if hasTable == 0 {
		var other string
		err := tx.QueryRowContext(ctx,
			"SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name LIMIT 1").Scan(&other)
		switch {
		case err == nil:
			return false, fmt.Errorf("not a regctl database: it has no schema_migrations table but holds %q", other)
		case !errors.Is(err, sql.ErrNoRows):
			return false, err
		}
		_, err = tx.ExecContext(ctx, `CREATE TABLE schema_migrations (
	version    INTEGER PRIMARY KEY NOT NULL,
	applied_at TEXT NOT NULL
) STRICT`)
		if err != nil {
			return false, err
		}
	}
	var version int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&version); err != nil {
		return false, err
	}
	switch {
	case version > len(migrations):
		return false, newerSchemaError{have: version, want: len(migrations)}
	case version == len(migrations):
		return true, nil
	}
	next := version + 1
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, fmt.Errorf("migrate schema to version %d: %w", next, err)
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		next, s.now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return false, fmt.Errorf("record schema version %d: %w", next, err)
	}
	if appID == 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
			return false, err
		}
	}
	return next == len(migrations), nil
}
