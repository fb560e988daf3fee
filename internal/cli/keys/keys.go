// Package keys is `regctl keys`: creating and rotating the token-signing
// regkeys.
package keys

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	regkeys "github.com/regctl/regctl/internal/keys"
)

// NewCmdKeys builds `regctl keys`.
func NewCmdKeys(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage token-signing keys"}
	cmd.AddCommand(NewCmdGenerate(f, nil), NewCmdRotate(f, nil), NewCmdRequest(f, nil), NewCmdSign(f, nil), NewCmdJoin(f, nil))
	return cmd
}

// GenerateOptions are `regctl keys generate`'s settings.
type GenerateOptions struct {
	IO  *cmdutil.IOStreams
	Now func() time.Time
	Dir string
	Alg regkeys.Algorithm
}

// NewCmdGenerate builds `regctl keys generate`.
func NewCmdGenerate(f *cmdutil.Factory, runF func(context.Context, *GenerateOptions) error) *cobra.Command {
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
replaced later (regctl keys rotate) without touching the registry's
configuration.`,
		Example: "  regctl keys generate --dir /etc/regctl/keys\n  regctl keys generate --dir ./keys --alg rs256",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := dirAndAlg(dir, alg)
			if err != nil {
				return err
			}
			o := &GenerateOptions{IO: f.IO, Now: f.Now, Dir: dir, Alg: a}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return generateRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to create the keys in (required)")
	cmd.Flags().StringVar(&alg, "alg", "es256", "signing algorithm: es256 or rs256")
	return cmd
}

// RotateOptions are `regctl keys rotate`'s settings.
type RotateOptions struct {
	IO         *cmdutil.IOStreams
	Now        func() time.Time
	Loc        *time.Location
	Dir        string
	RefreshKey bool
}

// NewCmdRotate builds `regctl keys rotate`.
func NewCmdRotate(f *cmdutil.Factory, runF func(context.Context, *RotateOptions) error) *cobra.Command {
	o := &RotateOptions{IO: f.IO, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the token-signing key with a new one from the same CA",
		Long: `Issue a new signing key and certificate from the CA in DIR (ca.key), of
the same type as the current key. The current pair is kept as
signing.prev.key (0600) and signing.prev.crt, replacing an older one, and
jwks.json lists the new and the previous key.

ca.crt and bundle.pem do not change, so the registry needs no change and no
restart: it trusts the CA, and every token carries its signing certificate
(x5c). regctl serve loads the new key within its --reload-interval, or at
once on SIGHUP; tokens signed with the previous key stay valid until they
expire. An expired signing certificate is fixed this way too.

--refresh-key also replaces refresh.key, the secret of refresh tokens: every
identity token that docker login stored stops working when regctl serve
reloads the directory, and its user must log in again. Use it when the
keys directory may have leaked.`,
		Example: `  regctl keys rotate --dir /etc/regctl/keys
  regctl keys rotate --dir /opt/regctl/keys && regctl doctor --config /etc/regctl/regctl.yaml
  regctl keys rotate --dir /etc/regctl/keys --refresh-key`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Dir == "" {
				return cmdutil.FlagErrorf("--dir is required")
			}
			o.Loc = f.Loc()
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return rotateRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "keys directory made by `regctl keys generate` (required)")
	cmd.Flags().BoolVar(&o.RefreshKey, "refresh-key", false, "also replace refresh.key, revoking every refresh token (docker login's stored credential)")
	return cmd
}

func generateRun(_ context.Context, o *GenerateOptions) error {
	if err := regkeys.Generate(o.Dir, o.Alg, o.Now()); err != nil {
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "Generated %s signing key and CA in %s\n", o.Alg, o.Dir)
	fmt.Fprintf(o.IO.ErrOut, "Registry config: auth.token.rootcertbundle: %s\n", filepath.Join(o.Dir, regkeys.BundleFile))
	return nil
}

func rotateRun(_ context.Context, o *RotateOptions) error {
	now := o.Now()
	rot, err := regkeys.Rotate(o.Dir, now)
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	w := o.IO.ErrOut
	fmt.Fprintf(w, "Rotated the %s signing key in %s\n", rot.Algorithm, o.Dir)
	fmt.Fprintf(w, "  new kid       %s, valid until %s\n", rot.NewKeyID, cmdutil.FormatDate(rot.NotAfter, now, o.Loc))
	fmt.Fprintf(w, "  previous kid  %s, kept in %s and jwks.json until the next rotation\n", rot.OldKeyID, regkeys.PrevSigningCrtFile)
	if o.RefreshKey {
		if err := regkeys.RotateRefreshKey(o.Dir); err != nil {
			return fmt.Errorf("rotate refresh key: %w", err)
		}
		fmt.Fprintf(w, "  refresh key   replaced: every refresh token is revoked once regctl serve reloads; users run docker login again\n")
	}
	fmt.Fprintf(w, "regctl serve picks the new key up within its --reload-interval (or now: kill -HUP its PID); the registry needs no change.\n")
	if rot.NotAfter.Sub(now) < regkeys.ExpiryWarning {
		fmt.Fprintf(w, "warning: the new certificate ends with the CA on %s: generate new keys (regctl keys generate) and change the registry's rootcertbundle before then\n",
			rot.NotAfter.In(o.Loc).Format(time.DateOnly))
	}
	return nil
}

// dirAndAlg checks the --dir and --alg that generate and request share.
func dirAndAlg(dir, alg string) (regkeys.Algorithm, error) {
	a, err := regkeys.ParseAlgorithm(alg)
	if err != nil {
		return "", &cmdutil.FlagError{Err: fmt.Errorf("--alg: %w", err)}
	}
	if dir == "" {
		return "", cmdutil.FlagErrorf("--dir is required")
	}
	return a, nil
}
