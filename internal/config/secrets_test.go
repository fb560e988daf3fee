package config

import (
	"reflect"
	"regexp"
	"slices"
	"testing"
)

func TestSecrets(t *testing.T) {
	c := Defaults()
	c.Storage.S3.AccessKey = "AKIAEXAMPLE"
	c.Storage.S3.SecretKey = "s3-secret/key+example"
	c.Storage.S3.Endpoint = "https://minio:endpoint-pw@s3.example.net"
	c.Database.URL = "mongodb://regctl:p%26w%2Fd@db.internal:27017/regctl?authSource=admin"
	got := c.Secrets()
	want := []string{"endpoint-pw", "s3-secret/key+example", "p&w/d", "p%26w%2Fd"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Secrets() = %q, want %q", got, want)
	}
	if d := Defaults(); len(d.Secrets()) != 0 {
		t.Errorf("the defaults hold secrets: %q", d.Secrets())
	}
}

// TestSecretFieldsAreTagged: a setting whose name says it holds a secret,
// or a URL that may carry a password, is tagged, so that Secrets returns
// it.
func TestSecretFieldsAreTagged(t *testing.T) {
	secretName := regexp.MustCompile(`secret|password|passphrase|credential|private|token_key|(^|[._])url$|endpoint$`)
	walk(reflect.ValueOf(Defaults()), "", func(name string, f reflect.StructField, _ reflect.Value) {
		tag := f.Tag.Get("secret")
		switch {
		case secretName.MatchString(name) && tag == "":
			t.Errorf("%s looks secret but has no secret tag", name)
		case tag != "" && tag != "value" && tag != "url":
			t.Errorf("%s: secret tag %q: use value or url", name, tag)
		case tag != "" && f.Type.Kind() != reflect.String:
			t.Errorf("%s: secret tag on a %s", name, f.Type)
		}
	})
}

func TestURLPasswords(t *testing.T) {
	for _, tt := range []struct {
		name, url string
		want      []string
	}{
		{"none", "mongodb://db.internal:27017/regctl", nil},
		{"user only", "mongodb://regctl@db.internal/regctl", nil},
		{"empty password", "mongodb://regctl:@db.internal/regctl", nil},
		{"plain", "mongodb://regctl:hunter22@db.internal/regctl", []string{"hunter22"}},
		{"encoded", "mongodb://regctl:p%40ss%2Fw%3Ard@db.internal/regctl?authSource=admin", []string{"p@ss/w:rd", "p%40ss%2Fw%3Ard"}},
		{"lowercase hex", "mongodb://regctl:p%2fw@db.internal/regctl", []string{"p/w", "p%2fw"}},
		{"raw at sign", "mongodb://regctl:p@ss@db.internal/regctl", []string{"p@ss"}},
		{"sub-delims", "mongodb+srv://u:a&b$c+d@cluster.example.net/regctl", []string{"a&b$c+d"}},
		{"several hosts", "mongodb://u:pw%25x@db1:27017,db2:27017/regctl", []string{"pw%x", "pw%25x"}},
		{"not a URL", "mongodb://u:p%zz@db", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := URLPasswords(tt.url); !slices.Equal(got, tt.want) {
				t.Errorf("URLPasswords(%q) = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}
