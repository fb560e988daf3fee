// Package token is `regctl token`: inspecting the tokens the token server
// issues.
package token

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	regkeys "github.com/regctl/regctl/internal/keys"
)

// NewCmdToken builds `regctl token`.
func NewCmdToken(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Inspect registry tokens"}
	cmd.AddCommand(NewCmdDecode(f, nil))
	return cmd
}

// DecodeOptions are `regctl token decode`'s settings.
type DecodeOptions struct {
	IO  *cmdutil.IOStreams
	Now func() time.Time
	// Token is the argument; empty or "-": standard input.
	Token   string
	KeysDir string
}

// NewCmdDecode builds `regctl token decode`.
func NewCmdDecode(f *cmdutil.Factory, runF func(context.Context, *DecodeOptions) error) *cobra.Command {
	o := &DecodeOptions{IO: f.IO, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "decode [TOKEN|-]",
		Short: "Print a registry token's header and claims, and verify it with --keys",
		Long: `Print a registry token's header and claims as JSON. The token comes from the
argument, or from standard input with '-' or no argument (a whole token
response JSON is accepted too). With --keys DIR the signature is verified
the way the registry does: the x5c chain must lead to the CA in DIR.`,
		Example: `  curl -s -u waldi "http://localhost:5001/auth/token?service=registry.example.com&scope=repository:test/app:pull" \
    | regctl token decode --keys /etc/regctl/keys`,
		Args: cmdutil.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Token = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return decodeRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.KeysDir, "keys", "", "verify the signature against the CA in this keys directory")
	return cmd
}

func decodeRun(_ context.Context, o *DecodeOptions) error {
	var raw []byte
	if o.Token != "" && o.Token != "-" {
		raw = []byte(o.Token)
	} else {
		var err error
		if raw, err = cmdutil.ReadFileOrStdin(o.IO, "-"); err != nil {
			return err
		}
	}
	tok := extractToken(raw)
	if tok == "" {
		return fmt.Errorf("no token found in the input")
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return fmt.Errorf("not a signed JWT: %w", err)
	}
	sig := jws.Signatures[0]
	hdr := map[string]any{"alg": sig.Header.Algorithm, "kid": sig.Header.KeyID}
	// The x5c chain, by subject: go-jose only parses it when asked to
	// verify it.
	var h struct {
		X5C []string `json:"x5c"`
	}
	x5c := []string{}
	if err := json.Unmarshal(protected(tok), &h); err == nil {
		for _, c := range h.X5C {
			if cert, err := x509.ParseCertificate(b64std(c)); err == nil {
				x5c = append(x5c, cert.Subject.CommonName)
			}
		}
	}
	hdr["x5c"] = x5c
	payload := jws.UnsafePayloadWithoutVerification()
	if o.KeysDir != "" {
		ks, err := regkeys.Load(o.KeysDir, o.Now())
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AddCert(ks.Chain[len(ks.Chain)-1])
		chains, err := sig.Protected.Certificates(x509.VerifyOptions{Roots: roots, CurrentTime: o.Now()})
		if err != nil {
			return fmt.Errorf("x5c chain does not verify against %s: %w", filepath.Join(o.KeysDir, regkeys.CACertFile), err)
		}
		if payload, err = jws.Verify(chains[0][0].PublicKey); err != nil {
			return fmt.Errorf("signature does not verify: %w", err)
		}
		hdr["verified"] = true
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("claims are not JSON: %w", err)
	}
	for _, k := range []string{"exp", "nbf", "iat"} {
		if v, ok := claims[k].(float64); ok {
			claims[k+"_time"] = time.Unix(int64(v), 0).UTC().Format(time.RFC3339)
		}
	}
	return cmdutil.WriteJSON(o.IO.Out, map[string]any{"header": hdr, "claims": claims})
}

// extractToken accepts a bare token or a token response.
func extractToken(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	var resp struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(raw, &resp) == nil {
		if resp.Token != "" {
			return resp.Token
		}
		return resp.AccessToken
	}
	return string(raw)
}

func protected(tok string) []byte {
	h, _, _ := strings.Cut(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(h)
	return b
}

func b64std(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}
