//go:build integration

package mongo

import (
	"strings"
	"testing"
	"time"
)

func TestDoctorChecks(t *testing.T) {
	s := openFresh(t)
	ctx := testCtx(t)
	if err := s.CheckIndexes(ctx); err != nil {
		t.Fatalf("CheckIndexes after Open: %v", err)
	}
	before := time.Now()
	st, err := s.ServerTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Same host: the server's clock is ours, within the round trip and its
	// millisecond precision.
	if d := st.Sub(before); d < -time.Second || d > 5*time.Second {
		t.Errorf("server time %v, local %v", st, before)
	}

	if err := s.users.Indexes().DropOne(ctx, fUsername+"_1"); err != nil {
		t.Fatal(err)
	}
	err = s.CheckIndexes(ctx)
	if err == nil || !strings.Contains(err.Error(), s.users.Name()+"."+fUsername) {
		t.Fatalf("CheckIndexes without the username index: %v", err)
	}
}
