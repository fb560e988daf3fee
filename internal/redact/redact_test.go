package redact_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/regctl/regctl/internal/redact"
)

const special = `p&<>"\'%/:@?#[] +$`

func TestMasksEveryForm(t *testing.T) {
	var s redact.Set
	s.Add("db-" + special)
	quoted := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	for _, tt := range []struct{ name, in string }{
		{"raw", "password db-" + special + " end"},
		{"json", "secretkey: " + quoted("db-"+special)},
		{"yaml double-quoted", `store: "` + strings.Trim(quoted("db-"+special), `"`) + `"`},
		{"json without html escaping", `{"k":"db-p&<>\"\\'%/:@?#[] +$"}`},
		{"go %q", fmt.Sprintf("bad value %q", "db-"+special)},
		{"yaml single-quoted", `k: 'db-p&<>"\''%/:@?#[] +$'`},
		{"shell single-quoted", `run 'db-p&<>"\'\''%/:@?#[] +$'`},
		{"query escaped", "?pw=" + url.QueryEscape("db-"+special)},
		{"path escaped", "/" + url.PathEscape("db-"+special) + "/x"},
		{"url password", "mongodb://" + url.UserPassword("u", "db-"+special).String() + "@h/db"},
		{"url user", "mongodb://" + url.User("db-"+special).String() + "@h/db"},
		{"lowercase percent", "mongodb://u:" + strings.ToLower(url.PathEscape("db-"+special)) + "@h"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := s.String(tt.in)
			if !strings.Contains(got, redact.Mask) || strings.Contains(got, "db-") {
				t.Errorf("String(%q) = %q", tt.in, got)
			}
			if b := s.Bytes([]byte(tt.in)); string(b) != got {
				t.Errorf("Bytes = %q, String = %q", b, got)
			}
		})
	}
}

func TestShortAndEmptyValuesAreIgnored(t *testing.T) {
	var s redact.Set
	s.Add("", "abc", "a\nbc")
	const text = "abc a bc registry.example.com"
	if got := s.String(text); got != text {
		t.Errorf("String = %q: short values were masked", got)
	}
	s.Add("abcd")
	if got := s.String(text + " abcd"); got != text+" "+redact.Mask {
		t.Errorf("String = %q", got)
	}
}

func TestNilSetMasksNothing(t *testing.T) {
	var s *redact.Set
	s.Add("secret-value")
	if s.String("secret-value") != "secret-value" || s.Error(nil) != nil {
		t.Error("a nil set masked something")
	}
	var b bytes.Buffer
	w := s.Writer(&b)
	fmt.Fprint(w, "secret-value")
	w.Flush()
	if b.String() != "secret-value" {
		t.Errorf("writer wrote %q", b.String())
	}
}

func TestLongestFirst(t *testing.T) {
	var s redact.Set
	s.Add("abcd", "abcdefgh")
	if got := s.String("xabcdefghx"); got != "x"+redact.Mask+"x" {
		t.Errorf("String = %q", got)
	}
}

const pemKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2
OF/2NxApJCzGCEDdfSp6VhO70hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r
1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oYH4AUfyL6nUtj
-----END PRIVATE KEY-----
`

func TestMultiLineValuesAreMaskedLineByLine(t *testing.T) {
	var s redact.Set
	s.Add(pemKey)
	if got := s.String("key:\n" + pemKey); got != "key:\n"+redact.Mask {
		t.Errorf("whole key: %q", got)
	}
	var diff strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(pemKey), "\n") {
		diff.WriteString("+" + l + "\n")
	}
	got := s.String(diff.String())
	for _, l := range strings.Split(pemKey, "\n")[1:4] {
		if strings.Contains(got, l) {
			t.Errorf("a diff of the key shows %q:\n%s", l, got)
		}
	}
	if !strings.Contains(got, "+-----BEGIN PRIVATE KEY-----") {
		t.Errorf("the armour line was masked:\n%s", got)
	}
}

func TestErrorWraps(t *testing.T) {
	var s redact.Set
	s.Add("hunter2-secret")
	base := &fs.PathError{Op: "open", Path: "/x/hunter2-secret", Err: fs.ErrNotExist}
	err := s.Error(fmt.Errorf("step 1: %w", base))
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "step 1: open /x/"+redact.Mask) {
		t.Errorf("Error() = %q", err)
	}
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Error("the masked error does not wrap the original")
	}
	plain := errors.New("nothing secret")
	if s.Error(plain) != plain { //nolint:errorlint // identity: the very same value must come back unchanged
		t.Error("an error with nothing to mask was wrapped")
	}
}

// TestWriterSplitWrites writes a text byte by byte, and in every split
// into two writes: no secret gets through, and the text is otherwise
// unchanged.
func TestWriterSplitWrites(t *testing.T) {
	var s redact.Set
	s.Add("db-"+special, "0123456789abcdef")
	text := "store: " + url.UserPassword("u", "db-"+special).String() + "\nsecret: \"0123456789abcdef\"\n" +
		"quoted " + strconv.Quote("db-"+special) + " and 0123456789abcde but not whole\nprompt: "
	want := s.String(text)
	for split := 0; split <= len(text); split++ {
		var b bytes.Buffer
		w := s.Writer(&b)
		w.Write([]byte(text[:split]))
		w.Write([]byte(text[split:]))
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Fatalf("split at %d: wrote\n%q\nwant\n%q", split, b.String(), want)
		}
	}
	var b bytes.Buffer
	w := s.Writer(&b)
	for i := range len(text) {
		w.Write([]byte{text[i]})
	}
	w.Flush()
	if b.String() != want {
		t.Errorf("byte by byte: wrote\n%q\nwant\n%q", b.String(), want)
	}
}

// TestWriterHoldsOnlyWhatCouldBeASecret: a line's end is written at once
// unless it could start a secret, so a prompt shows before its answer is
// read.
func TestWriterHoldsOnlyWhatCouldBeASecret(t *testing.T) {
	var s redact.Set
	s.Add("zz-secret")
	var b bytes.Buffer
	w := s.Writer(&b)
	fmt.Fprint(w, "Password for admin: ")
	if b.String() != "Password for admin: " {
		t.Errorf("wrote %q before the end of the line", b.String())
	}
	fmt.Fprint(w, "value zz-se")
	if b.String() != "Password for admin: value " {
		t.Errorf("wrote %q: the start of a secret was not held back", b.String())
	}
	fmt.Fprint(w, "cret\n")
	if want := "Password for admin: value " + redact.Mask + "\n"; b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
}

func TestConcurrentUse(t *testing.T) {
	var s redact.Set
	var b bytes.Buffer
	w := s.Writer(&b)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.Add(fmt.Sprintf("secret-%02d-value", i))
		}()
		go func() {
			defer wg.Done()
			_ = s.String("text secret-00-value")
			fmt.Fprintf(w, "line %d secret-%02d-value\n", i, i)
		}()
	}
	wg.Wait()
	w.Flush()
	if strings.Count(b.String(), "\n") != 8 {
		t.Errorf("lines lost:\n%s", b.String())
	}
	for i := range 8 {
		if got := s.String(fmt.Sprintf("secret-%02d-value", i)); got != redact.Mask {
			t.Errorf("secret %d: %q", i, got)
		}
	}
}
