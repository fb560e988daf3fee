package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/storeerr"
)

// wrapErr maps a driver error of operation op to the store's errors:
// ErrNotFound, ErrExists, ErrUnavailable (server selection, network,
// timeout, deadline, closed client), or op-prefixed otherwise.
func (s *Store) wrapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(decodeError)):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, mongodrv.ErrNoDocuments):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case mongodrv.IsDuplicateKeyError(err):
		return fmt.Errorf("%s: %w", op, store.ErrExists)
	case errors.Is(err, context.Canceled):
		return storeerr.New(op+": "+context.Canceled.Error(), err)
	case unavailable(err):
		return storeerr.Unavailable(op, s.scrub(cause(err)), err)
	}
	return storeerr.New(op+": "+s.scrub(storeerr.OneLine(err.Error())), err)
}

// unavailableCodes are server error codes that mean the server cannot
// serve now rather than that the request is wrong: a replica set member
// that is not (or no longer) primary, stepping down or shutting down, a
// host it cannot reach, a time limit. FerretDB answers InternalError for
// a backend it lost (its PostgreSQL primary killed mid-failover, found by
// the scale-out test), with nothing more specific to go by: a store that
// answers only that cannot decide, so it counts as unavailable too (503,
// fail closed, retried), and the message stays in the error.
var unavailableCodes = []int{
	1,     // InternalError
	6,     // HostUnreachable
	7,     // HostNotFound
	50,    // MaxTimeMSExpired
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	262,   // ExceededTimeLimit
	10107, // NotWritablePrimary
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary
}

// unavailable reports whether err means the server could not be reached,
// did not answer in time, or answered that it cannot serve now.
func unavailable(err error) bool {
	var sse topology.ServerSelectionError
	var ce topology.ConnectionError
	var pce driver.RetryablePoolError // the pool was cleared after a network error
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, mongodrv.ErrClientDisconnected) ||
		errors.As(err, &sse) ||
		errors.As(err, &ce) ||
		(errors.As(err, &pce) && pce.Retryable()) ||
		mongodrv.IsTimeout(err) ||
		mongodrv.IsNetworkError(err) ||
		slices.ContainsFunc(unavailableCodes, func(code int) bool { return hasErrorCode(err, code) })
}

// hasErrorCode reports whether err is a server error with code.
func hasErrorCode(err error, code int) bool {
	var se mongodrv.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

// cause summarises an unavailability error in one short line: the
// network error underneath if there is one, not the driver's topology
// description.
func cause(err error) string {
	if sse, ok := errors.AsType[topology.ServerSelectionError](err); ok {
		for _, srv := range sse.Desc.Servers {
			if srv.LastError != nil {
				return "no reachable server (last error: " + cause(srv.LastError) + ")"
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return "no reachable server before the deadline"
		}
		return "no reachable server"
	}
	if ne, ok := errors.AsType[*net.OpError](err); ok {
		return storeerr.OneLine(ne.Error())
	}
	if de, ok := errors.AsType[*net.DNSError](err); ok {
		return storeerr.OneLine(de.Error())
	}
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.Is(err, mongodrv.ErrClientDisconnected):
		return "client is closed"
	case errors.Is(err, context.DeadlineExceeded) || mongodrv.IsTimeout(err):
		return "timed out"
	}
	if pce := driver.RetryablePoolError(nil); errors.As(err, &pce) && pce.Retryable() {
		// It does not unwrap to the network error that cleared the pool.
		return "connection to the server lost"
	}
	return storeerr.OneLine(err.Error())
}

// scrub removes the URI's secrets from a message.
func (s *Store) scrub(msg string) string {
	return scrubSecrets(msg, s.secrets)
}

// scrubSecrets replaces every occurrence of each secret in msg.
func scrubSecrets(msg string, secrets []string) string {
	for _, p := range secrets {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// secretOptions are URI options whose value is a secret.
var secretOptions = []string{"tlscertificatekeyfilepassword", "sslclientcertificatekeypassword"}

// uriSecrets returns the secrets a mongodb:// or mongodb+srv:// URI holds:
// the password of its user information and the values of secretOptions,
// each as written and unescaped. It parses only that much, so it also
// works on URIs the driver rejects.
func uriSecrets(uri string) []string {
	var raws []string
	rest := uri
	if _, after, ok := strings.Cut(rest, "://"); ok {
		rest = after
	}
	if at := hostsStart(rest) - 1; at >= 0 {
		if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
			raws = append(raws, pw)
		}
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		for kv := range strings.SplitSeq(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if slices.Contains(secretOptions, strings.ToLower(k)) {
				raws = append(raws, v)
			}
		}
	}
	var secrets []string
	for _, raw := range raws {
		for _, v := range []string{raw, unescape(raw), url.QueryEscape(raw)} {
			if v != "" && !slices.Contains(secrets, v) {
				secrets = append(secrets, v)
			}
		}
	}
	// Longest first, so a secret is not half-replaced by a shorter one.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	return secrets
}

// hostsStart returns the index in rest (a URI after "://") just past the
// '@' that ends the user information, or 0 when there is none.
func hostsStart(rest string) int {
	authority := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		// Malformed: the password may hold an unescaped '/'. An '@' in
		// the query (an option value) does not end user information.
		query := strings.Index(rest, "?")
		if at = strings.Index(rest, "@"); query >= 0 && at > query {
			at = -1
		}
	}
	return at + 1
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// Redact returns uri with its password and other secret option values
// replaced by "xxxxx", for logs and messages.
func Redact(uri string) string {
	return scrubSecrets(uri, uriSecrets(uri))
}
