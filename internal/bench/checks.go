package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/token"
)

// measureBcrypt times one bcrypt comparison at the configured cost on an
// idle machine, single-threaded: the median wall time of several, and the
// mean CPU time, which other processes on a shared machine do not inflate.
func (r *run) measureBcrypt(context.Context) error {
	hash := []byte(r.hashes[0])
	pw := []byte(Password(0))
	var runs []time.Duration
	deadline := time.Now().Add(2 * time.Second)
	cpu0 := selfCPU()
	for len(runs) < 5 || len(runs) < 51 && time.Now().Before(deadline) {
		t0 := time.Now()
		if err := bcrypt.CompareHashAndPassword(hash, pw); err != nil {
			return err
		}
		runs = append(runs, time.Since(t0))
	}
	cpu := selfCPU() - cpu0
	slices.Sort(runs)
	b := &r.report.Bcrypt
	b.Cost = r.cfg.BcryptCost
	b.Samples = len(runs)
	b.MedianMS = float64(runs[len(runs)/2].Microseconds()) / 1000
	b.CPUMS = float64(cpu.Microseconds()) / 1000 / float64(len(runs))
	b.LimitPerSecond = float64(r.report.Environment.Cores) / runs[len(runs)/2].Seconds()
	r.logf("bcrypt cost %d: %.2f ms median (%.2f ms CPU) of %d; %d cores allow %.1f verifications/s",
		b.Cost, b.MedianMS, b.CPUMS, b.Samples, r.report.Environment.Cores, b.LimitPerSecond)
	return nil
}

func (r *run) measureRuleEval(context.Context) error {
	re, err := MeasureRuleEval(r.cfg.Rules, r.cfg.Users, 20000)
	if err != nil {
		return err
	}
	r.report.RuleEval = re
	r.logf("rule evaluation against %d rules: p50 %.1fµs p99 %.1fµs (compile %.0fms)",
		re.Rules, float64(re.P50NS)/1000, float64(re.P99NS)/1000, re.CompileMS)
	return nil
}

var client = &http.Client{Timeout: 30 * time.Second}

// tokenReply is regctl's token response.
type tokenReply struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
}

// get asks addr for a token as user i (Basic auth) for scope, and returns
// the status, the reply and the token's grants.
func get(ctx context.Context, addr string, i int, scope string, offline bool) (int, *tokenReply, []acl.Scope, error) {
	q := url.Values{"service": {Service}, "scope": {scope}}
	if offline {
		q.Set("offline_token", "true")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/auth/token?"+q.Encode(), nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.SetBasicAuth(UserName(i), Password(i))
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, nil, err
	}
	var rep tokenReply
	if err := json.Unmarshal(body, &rep); err != nil {
		return resp.StatusCode, nil, nil, fmt.Errorf("token response: %w", err)
	}
	access, err := grants(rep.Token)
	return resp.StatusCode, &rep, access, err
}

// grants decodes (without verifying) a token's access claim.
func grants(tok string) ([]acl.Scope, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("token is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c token.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	return c.Access, nil
}

// warmUp signs in each warm user once (bcrypt, then cached) with
// offline_token=true, keeping the refresh tokens for the refresh workload,
// and checks that the floor answers in the same shape.
func (r *run) warmUp(ctx context.Context) error {
	start := time.Now()
	w := r.cfg.WarmUsers
	r.refresh = make([]string, w)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan int)
	for range r.report.Environment.Cores * 2 {
		wg.Go(func() {
			for i := range next {
				status, rep, _, err := get(ctx, r.rAddr, i, Scope(i, 0, r.cfg.Rules), true)
				if err == nil && (status != http.StatusOK || rep.RefreshToken == "") {
					err = fmt.Errorf("user %s: status %d, refresh token %t (see %s)", UserName(i), status, rep != nil && rep.RefreshToken != "", r.regctl.LogPath)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				} else if err == nil {
					r.refresh[i] = rep.RefreshToken
				}
				mu.Unlock()
			}
		})
	}
	for i := range w {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	// The first user gets what the benchmark's rules say (own namespace),
	// and the floor answers with a token too.
	status, _, access, err := get(ctx, r.rAddr, 0, Scope(0, 0, r.cfg.Rules), false)
	if err != nil || status != http.StatusOK || len(access) != 1 || len(access[0].Actions) != 2 {
		return fmt.Errorf("regctl serve: status %d, access %v, %v: the benchmark data does not decide as expected", status, access, err) //nolint:errorlint // err may be nil here, and %w would print %!w(<nil>)
	}
	status, _, access, err = get(ctx, r.fAddr, 0, "", false)
	if err != nil || status != http.StatusOK || len(access) != 1 {
		return fmt.Errorf("floor: status %d, access %v, %v", status, access, err) //nolint:errorlint // err may be nil here, and %w would print %!w(<nil>)
	}
	r.logf("warm-up: %d users signed in, refresh tokens issued, in %.1fs", w, time.Since(start).Seconds())
	return nil
}

// staleness changes a rule and a user through the store and measures how
// long the server takes to apply each change.
func (r *run) staleness(ctx context.Context) error {
	// The peak so far is the load's; a rule change below makes the
	// server hold two compiled policies for a moment.
	if m, err := memory(r.regctl.PID()); err == nil {
		r.report.RegctlPeakRSSLoadBytes = m.Peak
	}
	interval := r.cfg.ReloadInterval
	if interval == 0 {
		interval = config.TokenServerDefaults().ReloadInterval
	}
	st := &r.report.Staleness
	st.ReloadIntervalS = interval.Seconds()
	st.BoundS = (interval + stalenessSlack).Seconds()
	limit := 3*interval + 10*time.Second

	// A rule granting user 0 a repository nothing granted it.
	scope := "repository:stale-check/app:pull"
	if ok, err := r.granted(ctx, 0, scope); err != nil || ok {
		return fmt.Errorf("before the rule change: granted %t, %v", ok, err) //nolint:errorlint // err may be nil here, and %w would print %!w(<nil>)
	}
	name := UserName(0)
	pattern := "stale-check/*"
	rule := acl.Rule{Seq: 1 << 40, Match: acl.Match{Account: &name, Name: &pattern}, Actions: []string{"pull"}, Comment: "regctl-bench staleness check"}
	if err := r.st.AddRule(ctx, rule); err != nil {
		return err
	}
	var err error
	if st.RuleChangeS, err = secondsUntil(ctx, limit, func() (bool, error) { return r.granted(ctx, 0, scope) }); err != nil {
		return err
	}
	_ = r.st.RemoveRule(ctx, rule.Seq)

	// Disabling a user whose record the server has just cached.
	if status, _, _, err := get(ctx, r.rAddr, 1, Scope(1, 0, r.cfg.Rules), false); err != nil || status != http.StatusOK {
		return fmt.Errorf("before the user change: status %d, %v", status, err) //nolint:errorlint // err may be nil here, and %w would print %!w(<nil>)
	}
	if _, err := r.st.UpdateUser(ctx, UserName(1), func(u *store.User) error { u.Disabled = true; return nil }); err != nil {
		return err
	}
	st.UserChangeS, err = secondsUntil(ctx, limit, func() (bool, error) {
		status, _, _, err := get(ctx, r.rAddr, 1, Scope(1, 0, r.cfg.Rules), false)
		return status == http.StatusUnauthorized, err
	})
	if err != nil {
		return err
	}
	r.logf("staleness: a rule change applied after %.2fs, a disabled user after %.2fs (reload interval %s)",
		st.RuleChangeS, st.UserChangeS, interval)
	return nil
}

// secondsUntil polls cond every 20 ms and returns the seconds until it
// held, or -1 if it did not within limit.
func secondsUntil(ctx context.Context, limit time.Duration, cond func() (bool, error)) (float64, error) {
	t0 := time.Now()
	for {
		ok, err := cond()
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(t0).Seconds(), nil
		}
		if time.Since(t0) > limit {
			return -1, nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// stalenessSlack is what a change may take beyond the reload interval:
// the reload itself (a store query and compiling the rules).
const stalenessSlack = time.Second

// granted reports whether user i gets scope's actions.
func (r *run) granted(ctx context.Context, i int, scope string) (bool, error) {
	status, _, access, err := get(ctx, r.rAddr, i, scope, false)
	if err != nil {
		return false, err
	}
	if status != http.StatusOK {
		return false, fmt.Errorf("status %d for user %s", status, UserName(i))
	}
	return len(access) == 1 && len(access[0].Actions) > 0, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
