package mongo

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// These tests need no server.

func marshal(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"mongodb://127.0.0.1:27017/regctl", "mongodb://127.0.0.1:27017/regctl"},
		{"mongodb://user:s3cret@db1:27017,db2:27017/regctl?replicaSet=rs0&authSource=admin",
			"mongodb://user:xxxxx@db1:27017,db2:27017/regctl?replicaSet=rs0&authSource=admin"},
		{"mongodb+srv://user:p%40ss%2Fw@cluster.example.net/?tls=true", "mongodb+srv://user:xxxxx@cluster.example.net/?tls=true"},
		{"mongodb://user@host/", "mongodb://user@host/"},
		{"mongodb://u:pa/ss@host/db", "mongodb://u:xxxxx@host/db"},
		{"mongodb://host/db?tls=true&tlsCertificateKeyFilePassword=k3y", "mongodb://host/db?tls=true&tlsCertificateKeyFilePassword=xxxxx"},
		{"mongodb://host:27017/db?appName=a@b", "mongodb://host:27017/db?appName=a@b"},
	} {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURIDatabase(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"mongodb://127.0.0.1:27017", ""},
		{"mongodb://127.0.0.1:27017/", ""},
		{"mongodb://127.0.0.1:27017/?replicaSet=rs0", ""},
		{"mongodb://u:p@a,b/auth?authSource=admin", "auth"},
		{"mongodb+srv://u:p%2Fq@cluster.example.net/reg%2Dctl", "reg-ctl"},
		{"mongodb://%2Ftmp%2Fmongodb-27017.sock/db", "db"},
	} {
		if got := uriDatabase(tt.in); got != tt.want {
			t.Errorf("uriDatabase(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOpenBadURIHidesPassword(t *testing.T) {
	for _, uri := range []string{
		"mongodb://admin:Sup3rS3cret@127.0.0.1:1/db?maxPoolSize=lots",
		"mongodb://admin:Sup3rS3cret@127.0.0.1:1/db?authMechanism=NOPE",
		"mongodb://admin:Sup3rS3cret@127.0.0.1:1:2:3/db",
		"notmongo://admin:Sup3rS3cret@127.0.0.1:1/db",
	} {
		s, err := Open(t.Context(), uri, WithTimeout(time.Second))
		if err == nil {
			_ = s.Close(t.Context())
			t.Errorf("Open(%s) succeeded", Redact(uri))
			continue
		}
		if strings.Contains(err.Error(), "Sup3rS3cret") {
			t.Errorf("error reveals the password: %v", err)
		}
		t.Logf("%v", err)
	}
}

// TestOpenDeadServer: nothing listens on 127.0.0.1:1, so Open fails with
// ErrUnavailable within its timeout, without the password in the message.
func TestOpenDeadServer(t *testing.T) {
	start := time.Now()
	_, err := Open(t.Context(), "mongodb://admin:Sup3rS3cret@127.0.0.1:1/db?authSource=admin", WithTimeout(time.Second))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Open took %v with a 1s timeout", d)
	}
	if msg := err.Error(); strings.Contains(msg, "Sup3rS3cret") || strings.Contains(msg, "\n") || len(msg) > 300 {
		t.Errorf("error message %q: want one short line without the password", msg)
	}
	t.Logf("%v", err)

	// A caller's deadline wins over the store's timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = Open(ctx, "mongodb://127.0.0.1:1/", WithTimeout(5*time.Second))
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open with a short deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open took %v with a 100ms deadline", d)
	}
}

func TestDecodeUser(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	raw := marshal(t, bson.D{
		{Key: "_id", Value: bson.NewObjectID()},
		{Key: "username", Value: "alice"},
		{Key: "password", Value: "$2y$05$x"},
		{Key: "labels", Value: bson.D{{Key: "a", Value: bson.A{"1", "2"}}, {Key: "b", Value: "3"}, {Key: "c", Value: bson.A{}}}},
		{Key: "grants", Value: bson.A{
			bson.D{{Key: "pattern", Value: "x.y/*"}, {Key: "actions", Value: bson.A{"pull"}}, {Key: "expires_at", Value: bson.NewDateTimeFromTime(exp)}},
		}},
		{Key: "expires_at", Value: bson.NewDateTimeFromTime(exp)},
		{Key: "disabled", Value: true},
		{Key: "created_at", Value: bson.NewDateTimeFromTime(exp)},
		{Key: "rev", Value: int32(7)},
		{Key: "whatever", Value: bson.D{{Key: "x", Value: 1}}},
	})
	u, rev, err := decodeUser(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.PasswordHash != "$2y$05$x" || !u.Disabled || !u.ExpiresAt.Equal(exp) ||
		!u.CreatedAt.Equal(exp) || !u.UpdatedAt.IsZero() || rev != (userRev{7, true}) {
		t.Errorf("decoded %+v rev %+v", u, rev)
	}
	if len(u.Labels["a"]) != 2 || u.Labels["b"][0] != "3" || u.Labels["c"] == nil || len(u.Labels["c"]) != 0 {
		t.Errorf("labels %#v", u.Labels)
	}
	if g := u.Grants; len(g) != 1 || g[0].Pattern != "x.y/*" || !g[0].ExpiresAt.Equal(exp) {
		t.Errorf("grants %+v", g)
	}

	for name, extra := range map[string]bson.E{
		"password":   {Key: "password", Value: int32(1)},
		"labels":     {Key: "labels", Value: bson.A{"x"}},
		"label elem": {Key: "labels", Value: bson.D{{Key: "a", Value: bson.A{int32(1)}}}},
		"grants":     {Key: "grants", Value: bson.A{bson.D{{Key: "pattern", Value: "x"}, {Key: "ip", Value: "y"}}}},
		"expires_at": {Key: "expires_at", Value: "2030-01-01"},
		"disabled":   {Key: "disabled", Value: "yes"},
		"rev":        {Key: "rev", Value: "1"},
	} {
		_, _, err := decodeUser(marshal(t, bson.D{{Key: "username", Value: "bob"}, extra}))
		if err == nil || !strings.Contains(err.Error(), `"bob"`) {
			t.Errorf("%s: error %v, want one naming the user", name, err)
		}
	}
}

func TestUserRoundTrip(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6_789_123, time.FixedZone("X", 7200))
	u := &store.User{
		Username: "alice", PasswordHash: "h",
		Labels:    map[string][]string{"b": {"2"}, "a": {"1", "1.5"}},
		Grants:    []acl.Grant{{Pattern: "p", Actions: []string{}}, {Pattern: "q", ExpiresAt: &exp}},
		ExpiresAt: &exp, Disabled: true, CreatedAt: exp, UpdatedAt: exp,
	}
	doc := append(bson.D{{Key: "username", Value: "alice"}}, userSet(u)...)
	got, rev, err := decodeUser(marshal(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	want := store.NormalizeTimes(u)
	if rev.present || got.ExpiresAt.Compare(*want.ExpiresAt) != 0 || got.ExpiresAt.Location() != time.UTC ||
		!got.CreatedAt.Equal(want.CreatedAt) || got.Grants[0].Actions == nil || got.Grants[1].Actions != nil ||
		!got.Grants[1].ExpiresAt.Equal(*want.Grants[1].ExpiresAt) || len(got.Labels["a"]) != 2 {
		t.Errorf("round trip: got %+v, want %+v", got, want)
	}
	if want.ExpiresAt.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("normalizeUser kept sub-millisecond time %v", want.ExpiresAt)
	}
}

func TestRuleRoundTrip(t *testing.T) {
	s := func(v string) *string { return &v }
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	for _, r := range []acl.Rule{
		{Seq: 1, Match: acl.Match{}, Actions: []string{}},
		{Seq: -3, Match: acl.Match{Account: s("a"), Type: s("t"), Name: s("n.x"), Service: s("s"), IP: s("::1"),
			Labels: map[string]string{"k": "v"}}, Actions: []string{"*"}, Comment: "c", ExpiresAt: &exp},
		{Seq: 1 << 50},
	} {
		got, err := decodeRule(marshal(t, encodeRule(r)))
		if err != nil {
			t.Fatalf("seq %d: %v", r.Seq, err)
		}
		if got.Seq != r.Seq || (got.Actions == nil) != (r.Actions == nil) || len(got.Actions) != len(r.Actions) ||
			got.Comment != r.Comment || (r.ExpiresAt != nil && !got.ExpiresAt.Equal(exp)) ||
			(r.Match.Name != nil && *got.Match.Name != *r.Match.Name) || got.Match.Labels["k"] != r.Match.Labels["k"] {
			t.Errorf("round trip of %+v gave %+v", r, got)
		}
	}
}

func TestDecodeRuleErrors(t *testing.T) {
	for _, tt := range []struct {
		doc  bson.D
		want string
	}{
		{bson.D{{Key: "seq", Value: int64(5)}, {Key: "match", Value: bson.D{{Key: "repo", Value: "x"}}}}, `acl rule seq 5: match: repo: unknown match key`},
		{bson.D{{Key: "seq", Value: int64(6)}, {Key: "match", Value: bson.D{{Key: "labels", Value: bson.D{{Key: "g", Value: bson.A{"x"}}}}}}}, `acl rule seq 6: match: labels: label "g"`},
		{bson.D{{Key: "seq", Value: int64(7)}, {Key: "match", Value: "all"}}, `acl rule seq 7: match: is a BSON string`},
		{bson.D{{Key: "seq", Value: int64(8)}, {Key: "match", Value: bson.D{}}, {Key: "actions", Value: bson.A{"pull", int32(1)}}}, `acl rule seq 8: actions`},
		{bson.D{{Key: "seq", Value: int64(9)}, {Key: "match", Value: bson.D{}}, {Key: "comment", Value: int32(1)}}, `acl rule seq 9: comment`},
		{bson.D{{Key: "seq", Value: int64(10)}, {Key: "match", Value: bson.D{}}, {Key: "expires_at", Value: int64(1)}}, `acl rule seq 10: expires_at`},
		{bson.D{{Key: "seq", Value: int64(11)}}, `acl rule seq 11: missing match`},
		{bson.D{{Key: "seq", Value: "12"}, {Key: "match", Value: bson.D{}}}, `seq is a BSON string`},
		{bson.D{{Key: "match", Value: bson.D{}}}, `missing seq`},
	} {
		_, err := decodeRule(marshal(t, tt.doc))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decodeRule(%v): error %v, want one containing %q", tt.doc, err, tt.want)
		}
	}
	// null optional fields are absent.
	r, err := decodeRule(marshal(t, bson.D{{Key: "seq", Value: 3.0}, {Key: "match", Value: bson.D{{Key: "name", Value: nil}}},
		{Key: "actions", Value: nil}, {Key: "comment", Value: nil}}))
	if err != nil || r.Seq != 3 || r.Match.Name != nil || r.Actions != nil {
		t.Errorf("nulls: %+v, %v", r, err)
	}
}

func TestUserUnset(t *testing.T) {
	set := userSet(&store.User{Username: "a", PasswordHash: ""})
	unset := userUnset(set)
	var keys []string
	for _, e := range unset {
		keys = append(keys, e.Key)
	}
	if strings.Join(keys, ",") != "labels,grants,expires_at,disabled,created_at,updated_at" {
		t.Errorf("unset %v (password must never be unset)", keys)
	}
}

// TestServerErrorsThatMeanUnavailable: a server answering that it cannot
// serve now (not primary, stepping down, shutting down; FerretDB's
// InternalError for a lost backend) is ErrUnavailable, a 503; an error
// about the request itself is not.
func TestServerErrorsThatMeanUnavailable(t *testing.T) {
	s := &Store{}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{mongodrv.CommandError{Code: 1, Name: "InternalError", Message: "failed to connect to `host=10.0.0.1`"}, true},
		{mongodrv.CommandError{Code: 10107, Name: "NotWritablePrimary"}, true},
		{mongodrv.CommandError{Code: 189, Name: "PrimarySteppedDown"}, true},
		{mongodrv.CommandError{Code: 91, Name: "ShutdownInProgress"}, true},
		{mongodrv.WriteException{WriteConcernError: &mongodrv.WriteConcernError{Code: 11602, Name: "InterruptedDueToReplStateChange"}}, true},
		{mongodrv.CommandError{Code: 2, Name: "BadValue"}, false},
		{mongodrv.CommandError{Code: 13, Name: "Unauthorized"}, false},
		{mongodrv.WriteException{WriteErrors: []mongodrv.WriteError{{Code: 11000}}}, false}, // duplicate key: ErrExists
	} {
		err := s.wrapErr("find user", tt.err)
		if got := errors.Is(err, store.ErrUnavailable); got != tt.want {
			t.Errorf("%v: unavailable %v, want %v (%v)", tt.err, got, tt.want, err)
		}
	}
}
