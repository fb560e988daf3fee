// Package templates holds the files `regctl render` produces, as Go
// text/templates embedded in the binary, and the commented example
// configuration. It is a package of its own because go:embed cannot reach
// parent directories; only internal/render parses these templates.
package templates

import "embed"

// FS holds every *.tmpl template and regctl.example.yaml.
//
//go:embed *.tmpl regctl.example.yaml
var FS embed.FS

// Example is the commented example configuration, regctl.example.yaml.
//
//go:embed regctl.example.yaml
var Example []byte
