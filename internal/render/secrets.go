package render

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/config"
)

// SecretsIn returns the secret values in data, a version of the rendered
// file p (relative to the root) that may be older than the configuration:
// the registry's HTTP secret, S3 secret key and the password in its S3
// endpoint, and the password in the token server's store URL, or the
// content of a generated secret file. A diff against an old file masks
// them too, although the configuration no longer holds them (an S3 key
// just rotated). A file that does not parse holds none that SecretsIn can
// find.
func SecretsIn(p string, data []byte) []string {
	switch p {
	case RegistrySecretFile, MongoPasswordFile:
		return []string{strings.TrimSpace(string(data))}
	case RegistryConfFile:
		var reg struct {
			HTTP    struct{ Secret string }
			Storage struct {
				S3 struct {
					SecretKey      string `yaml:"secretkey"`
					RegionEndpoint string `yaml:"regionendpoint"`
				}
			}
		}
		if yaml.Unmarshal(data, &reg) != nil {
			return nil
		}
		return append([]string{reg.HTTP.Secret, reg.Storage.S3.SecretKey}, config.URLPasswords(reg.Storage.S3.RegionEndpoint)...)
	case TokenConfFile:
		var tok struct{ Store string }
		if yaml.Unmarshal(data, &tok) != nil {
			return nil
		}
		return config.URLPasswords(tok.Store)
	}
	return nil
}
