package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/keys"
)

// NewCmdKeys builds `regctl keys`.
func NewCmdKeys(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage token-signing keys"}
	cmd.AddCommand(NewCmdKeysGenerate(f, nil))
	return cmd
}

// KeysGenerateOptions are `regctl keys generate`'s settings.
type KeysGenerateOptions struct {
	Dir string
	Alg keys.Algorithm
}

// NewCmdKeysGenerate builds `regctl keys generate`.
func NewCmdKeysGenerate(f *Factory, runF func(*KeysGenerateOptions) error) *cobra.Command {
	var dir, alg string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Create a local CA, a token-signing key and the registry's trust bundle",
		Long: `Create the token-signing material in DIR (mode 0700):

  ca.key       CA private key (0600); only needed to issue signing certificates
  ca.crt       CA certificate
  signing.key  token-signing private key (0600), read by regctl serve
  signing.crt  signing certificate, issued by the CA, sent in every token's x5c
  refresh.key  secret for refresh tokens (0600), read by regctl serve
  bundle.pem   the CA certificate: point the registry's auth.token.rootcertbundle here
  jwks.json    the signing key as JWKS: distribution v3's optional auth.token.jwks

The registry trusts the CA, not the signing key, so the signing key can be
replaced later without touching the registry's configuration.`,
		Example: "  regctl keys generate --dir /etc/regctl/keys\n  regctl keys generate --dir ./keys --alg rs256",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := keys.ParseAlgorithm(alg)
			if err != nil {
				return &FlagError{Err: fmt.Errorf("--alg: %w", err)}
			}
			if dir == "" {
				return flagErrorf("--dir is required")
			}
			o := &KeysGenerateOptions{Dir: dir, Alg: a}
			if runF != nil {
				return runF(o)
			}
			if err := keys.Generate(o.Dir, o.Alg, f.Now()); err != nil {
				return err
			}
			fmt.Fprintf(f.IO.ErrOut, "Generated %s signing key and CA in %s\n", o.Alg, o.Dir)
			fmt.Fprintf(f.IO.ErrOut, "Registry config: auth.token.rootcertbundle: %s\n", filepath.Join(o.Dir, keys.BundleFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to create the keys in (required)")
	cmd.Flags().StringVar(&alg, "alg", "es256", "signing algorithm: es256 or rs256")
	return cmd
}
