package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// ListRules returns every rule sorted by Seq. A row that does not decode
// (an unknown match key, a value of the wrong type) is an error naming its
// seq: a rule set that cannot be read exactly is not used.
func (s *Store) ListRules(ctx context.Context) ([]acl.Rule, error) {
	var rules []acl.Rule
	err := s.read(ctx, "list rules", func(ctx context.Context) error {
		rows, err := s.query(ctx, "SELECT "+ruleColumns+" FROM rules ORDER BY seq")
		if err != nil {
			return err
		}
		rules, err = scanRules(rows)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rules, nil
}

const ruleColumns = "seq, match, actions, comment, expires_at"

// scanRules reads and closes rows of ruleColumns.
func scanRules(rows *sql.Rows) ([]acl.Rule, error) {
	defer rows.Close()
	rules := []acl.Rule{}
	for rows.Next() {
		var (
			r         acl.Rule
			match     string
			actions   sql.NullString
			expiresAt sql.NullInt64
		)
		if err := rows.Scan(&r.Seq, &match, &actions, &r.Comment, &expiresAt); err != nil {
			return nil, err
		}
		var err error
		if r.Match, err = decodeMatch(match); err != nil {
			return nil, decodeError{fmt.Errorf("rule seq %d: match: %w", r.Seq, err)}
		}
		if actions.Valid {
			if err := json.Unmarshal([]byte(actions.String), &r.Actions); err != nil {
				return nil, decodeError{fmt.Errorf("rule seq %d: actions: %w", r.Seq, err)}
			}
		}
		if expiresAt.Valid {
			r.ExpiresAt = timePtr(&expiresAt.Int64)
		}
		rules = append(rules, r)
	}
	return rules, rows.Err()
}

// RuleChangesSince returns the rules changed and removed since the cursor,
// read in one transaction, so from one state of the database. Triggers
// record every change (schema version 2), including those made with the
// sqlite3 shell or by another process. A zero cursor, one from another
// database (epoch) or one ahead of the database (a backup restored over
// it) gets every rule, Full.
func (s *Store) RuleChangesSince(ctx context.Context, since store.RuleCursor) (store.RuleChanges, error) {
	var ch store.RuleChanges
	err := s.read(ctx, "read rule changes", func(ctx context.Context) error {
		tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		ch = store.RuleChanges{}
		err = tx.QueryRowContext(ctx, `SELECT
			(SELECT value FROM meta WHERE key = 'rules_epoch'),
			(SELECT value FROM meta WHERE key = 'rules_version')`).Scan(&ch.Cursor.Epoch, &ch.Cursor.Version)
		if err != nil {
			return err
		}
		if ch.Cursor == since {
			return nil
		}
		ch.Full = since == (store.RuleCursor{}) || since.Epoch != ch.Cursor.Epoch || since.Version > ch.Cursor.Version
		from := since.Version
		if ch.Full {
			from = -1
		}
		rows, err := tx.QueryContext(ctx, "SELECT "+ruleColumns+" FROM rules WHERE version > ? ORDER BY seq", from)
		if err != nil {
			return err
		}
		if ch.Rules, err = scanRules(rows); err != nil {
			return err
		}
		if ch.Full {
			return nil
		}
		rows, err = tx.QueryContext(ctx, "SELECT seq FROM rules_removed WHERE version > ? ORDER BY seq", from)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				return err
			}
			ch.Removed = append(ch.Removed, seq)
		}
		return rows.Err()
	})
	if err != nil {
		return store.RuleChanges{}, err
	}
	return ch, nil
}

// AddRule inserts r, or returns an error wrapping store.ErrExists if its
// seq is taken (store.ErrInvalid if r cannot be stored).
func (s *Store) AddRule(ctx context.Context, r acl.Rule) error {
	op := fmt.Sprintf("add rule seq %d", r.Seq)
	row, err := encodeRule(r)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		return s.txExecOne(ctx, tx, store.ErrExists, qAddRule, row.args()...)
	})
}

// RemoveRule deletes the rule with seq, or returns an error wrapping
// store.ErrNotFound.
func (s *Store) RemoveRule(ctx context.Context, seq int64) error {
	return s.deleteRow(ctx, fmt.Sprintf("remove rule seq %d", seq), qDeleteRule, seq)
}

// ReplaceRules replaces the whole rule set in one transaction: readers see
// the old set or the new one, never a mixture. Duplicate seqs in rules are
// an error wrapping store.ErrExists, an unstorable rule one wrapping
// store.ErrInvalid; either way nothing changes.
func (s *Store) ReplaceRules(ctx context.Context, rules []acl.Rule) error {
	const op = "replace rules"
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b acl.Rule) int { return cmp.Compare(a.Seq, b.Seq) })
	rows := make([]ruleRow, len(sorted))
	for i, r := range sorted {
		if i > 0 && r.Seq == sorted[i-1].Seq {
			return fmt.Errorf("%s: seq %d given twice: %w", op, r.Seq, store.ErrExists)
		}
		var err error
		if rows[i], err = encodeRule(r); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, qDeleteRules); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		stmt, err := s.txStmt(ctx, tx, qInsertRule)
		if err != nil {
			return err
		}
		for _, row := range rows {
			if _, err := stmt.ExecContext(ctx, row.args()...); err != nil {
				return err
			}
		}
		return nil
	})
}

// RulesVersion returns a counter that changes whenever the rule set
// changes, through this store, another process or the sqlite3 shell (it is
// maintained by triggers). A reader can poll it, one cheap query, and call
// ListRules only when it moved. It only ever increases.
func (s *Store) RulesVersion(ctx context.Context) (int64, error) {
	const op = "read rules version"
	var v int64
	err := s.read(ctx, op, func(ctx context.Context) error {
		return s.queryRow(ctx, "SELECT value FROM meta WHERE key = 'rules_version'").Scan(&v)
	})
	return v, err
}

// ruleRow is a rule's columns in their stored form.
type ruleRow struct {
	seq       int64
	match     string
	actions   sql.NullString
	comment   string
	expiresAt sql.NullInt64
}

func (r ruleRow) args() []any { return []any{r.seq, r.match, r.actions, r.comment, r.expiresAt} }

// encodeRule checks that r can be stored (store.CheckRule, and strings that
// JSON carries unchanged) and returns its row. A nil Actions is stored as
// NULL, an empty one as "[]".
func encodeRule(r acl.Rule) (ruleRow, error) {
	if err := store.CheckRule(r); err != nil {
		return ruleRow{}, err
	}
	m := r.Match
	ok := true
	for _, p := range []*string{m.Account, m.Type, m.Name, m.Service, m.IP} {
		ok = ok && (p == nil || utf8.ValidString(*p))
	}
	for k, v := range m.Labels {
		ok = ok && utf8.ValidString(k) && utf8.ValidString(v)
	}
	for _, a := range r.Actions {
		ok = ok && utf8.ValidString(a)
	}
	if !ok {
		return ruleRow{}, fmt.Errorf("rule seq %d: a match value or action is not valid UTF-8: %w", r.Seq, store.ErrInvalid)
	}
	match, err := json.Marshal(m)
	if err != nil {
		return ruleRow{}, fmt.Errorf("rule seq %d: encode match: %w", r.Seq, err)
	}
	row := ruleRow{seq: r.Seq, match: string(match), comment: r.Comment, expiresAt: nullMS(r.ExpiresAt)}
	if r.Actions != nil {
		b, err := json.Marshal(r.Actions)
		if err != nil {
			return ruleRow{}, fmt.Errorf("rule seq %d: encode actions: %w", r.Seq, err)
		}
		row.actions = sql.NullString{String: string(b), Valid: true}
	}
	return row, nil
}

// decodeMatch decodes a stored match object strictly: an unknown key
// (docker_auth would ignore it and so match more widely than meant) or a
// value of the wrong type is an error. null is the same as absent.
func decodeMatch(data string) (acl.Match, error) {
	var m acl.Match
	// Fast path: acl.Match's JSON keys are the stored ones.
	if err := unmarshalStrict(data, &m); err == nil && strings.HasPrefix(data, "{") {
		if len(m.Labels) == 0 {
			m.Labels = nil
		}
		return m, nil
	}
	// Slow path, for a precise error.
	m = acl.Match{}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &raw); err != nil {
		return m, err
	}
	if raw == nil {
		return m, errors.New("is not a JSON object")
	}
	if err := acl.ValidateMatchKeys(slices.Sorted(maps.Keys(raw))); err != nil {
		return m, err
	}
	fields := map[string]**string{
		"account": &m.Account, "type": &m.Type, "name": &m.Name, "service": &m.Service, "ip": &m.IP,
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		var err error
		if dst, ok := fields[k]; ok {
			err = json.Unmarshal(raw[k], dst)
		} else { // "labels", the only other key ValidateMatchKeys allows
			err = json.Unmarshal(raw[k], &m.Labels)
		}
		if err != nil {
			return m, fmt.Errorf("%s: %w", k, err)
		}
	}
	if len(m.Labels) == 0 {
		m.Labels = nil
	}
	return m, nil
}
