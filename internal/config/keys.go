package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// EnvPrefix is the prefix of every environment override.
const EnvPrefix = "REGCTL_"

// Key is one setting of regctl.yaml.
type Key struct {
	Name    string // dotted path, e.g. "domains.registry"
	Env     string // its environment override, e.g. "REGCTL_DOMAINS_REGISTRY"
	Default any    // value in Defaults()
}

// Keys lists every setting in file order.
func Keys() []Key {
	var out []Key
	walk(reflect.ValueOf(Defaults()), "", func(name string, _ reflect.StructField, v reflect.Value) {
		out = append(out, Key{Name: name, Env: EnvName(name), Default: v.Interface()})
	})
	return out
}

// Known reports whether key (a dotted path, any case) is a setting of
// regctl.yaml or a section holding settings, by its current name or a
// Renamed one.
func Known(key string) bool {
	key = strings.ToLower(key)
	if _, ok := Renamed(key); ok {
		return true
	}
	for _, k := range Keys() {
		if k.Name == key || strings.HasPrefix(k.Name, key+".") {
			return true
		}
	}
	return false
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

var durationType = reflect.TypeFor[time.Duration]()

// walk calls fn for every setting of v (a Config or a section of one): its
// dotted name, its field and its value.
func walk(v reflect.Value, prefix string, fn func(string, reflect.StructField, reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			panic(fmt.Sprintf("config: field %s.%s has no mapstructure tag", t.Name(), f.Name))
		}
		name := tag
		if prefix != "" {
			name = prefix + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			walk(fv, name, fn)
			continue
		}
		fn(name, f, fv)
	}
}

// Renamed returns the current name of a key (a dotted path, any case)
// whose spelling changed in this release: the words of regctl.yaml's keys
// were joined with '_' (tls.hsts_max_age) and are now joined with '-', as
// every other config file's keys, regctl's long flag names, are; and a
// regctl.yaml that set the certs commands' flat acme-email and
// acme-directory now sets acme.email and acme.ca, which those commands
// read. A file may use the old names, with a warning, until the next
// release. The environment overrides are the same for both spellings.
func Renamed(key string) (current string, ok bool) {
	key = strings.ToLower(key)
	switch key {
	case "acme-email":
		return "acme.email", true
	case "acme-directory":
		return "acme.ca", true
	}
	if !strings.Contains(key, "_") {
		return "", false
	}
	for _, k := range Keys() {
		if strings.Contains(k.Name, "-") && strings.ReplaceAll(k.Name, "-", "_") == key {
			return k.Name, true
		}
	}
	return "", false
}
