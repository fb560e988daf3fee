package acl

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DecodeRules strictly decodes a YAML or JSON list of rules, as `regctl
// acl export` writes it: unknown keys are errors. It does not validate the
// rules (Compile does).
func DecodeRules(data []byte) ([]Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rules []Rule
	if err := dec.Decode(&rules); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no rules found (want a YAML or JSON list)")
		}
		return nil, yamlError(err)
	}
	for i := range rules {
		if rules[i].ExpiresAt != nil {
			t := rules[i].ExpiresAt.UTC()
			rules[i].ExpiresAt = &t
		}
	}
	return rules, nil
}

// yamlError makes a YAML decoding error one line, in regctl's terms: the
// decoder's type errors are joined, and its Go type names become the
// rules file's keys.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msg := "yaml: " + strings.Join(te.Errors, "; ")
	msg = strings.ReplaceAll(msg, " in type acl.Match", " in match (allowed: account, type, name, service, ip, labels)")
	msg = strings.ReplaceAll(msg, " in type acl.Rule", " in rule (allowed: seq, match, actions, comment, expires_at)")
	return errors.New(msg)
}
