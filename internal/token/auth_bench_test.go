package token

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/store"
)

// BenchmarkUserLookup is the authenticator's user lookup with the user
// cache hot (a hit: no store query) and cold (a miss: the store query,
// here an in-memory one, plus caching the result). The SQLite store's own
// query cost is BenchmarkGetUser in internal/store/sqlite.
func BenchmarkUserLookup(b *testing.B) {
	f := newFixture(b)
	const n = 1024
	for i := range n {
		f.st.setUser(store.User{Username: fmt.Sprintf("user%04d", i), PasswordHash: f.st.users["waldi"].PasswordHash})
	}
	a := f.srv.auth
	ctx := b.Context()
	b.Run("hot", func(b *testing.B) {
		if _, err := a.user(ctx, "waldi"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.user(ctx, "waldi"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("user%04d", i)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			a.cache.Remove(names[i%n])
			if _, err := a.user(ctx, names[i%n]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkAuthenticate is a password check with the credential cache
// hot (one HMAC) and cold (bcrypt, at the minimum cost in this fixture).
func BenchmarkAuthenticate(b *testing.B) {
	f := newFixture(b)
	a := f.srv.auth
	ctx := b.Context()
	b.Run("cached", func(b *testing.B) {
		if _, _, err := a.authenticate(ctx, netip.Prefix{}, "waldi", "waldi-secret", f.clock.Now()); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, cached, err := a.authenticate(ctx, netip.Prefix{}, "waldi", "waldi-secret", f.clock.Now()); err != nil || !cached {
				b.Fatalf("cached %t, %v", cached, err)
			}
		}
	})
	b.Run("bcrypt-mincost", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.creds.Remove("waldi")
			if _, cached, err := a.authenticate(ctx, netip.Prefix{}, "waldi", "waldi-secret", f.clock.Now()); err != nil || cached {
				b.Fatalf("cached %t, %v", cached, err)
			}
		}
	})
}

// BenchmarkLogDecision is the per-request log line of a granted token, as
// regctl serve writes it by default (text, level info) to a file, and to
// io.Discard (formatting only).
func BenchmarkLogDecision(b *testing.B) {
	f := newFixture(b)
	sc := []acl.Scope{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}
	d := decision{user: "waldi", ip: netip.MustParseAddr("192.0.2.7"), grant: grantBasic, requested: sc, granted: sc, status: 200}
	file, err := os.Create(filepath.Join(b.TempDir(), "serve.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	for _, out := range []struct {
		name string
		w    io.Writer
	}{{"file", file}, {"discard", io.Discard}} {
		b.Run(out.name, func(b *testing.B) {
			s := f.srv
			s.log = slog.New(slog.NewTextHandler(out.w, nil))
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				s.logDecision(ctx, &d)
			}
		})
	}
}
