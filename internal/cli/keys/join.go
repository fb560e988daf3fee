package keys

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/regctl/regctl/internal/cli/cmdutil"
	regkeys "github.com/regctl/regctl/internal/keys"
)

// RequestOptions are `regctl keys request`'s settings.
type RequestOptions struct {
	IO  *cmdutil.IOStreams
	Dir string
	Alg regkeys.Algorithm
}

// NewCmdRequest builds `regctl keys request`.
func NewCmdRequest(f *cmdutil.Factory, runF func(context.Context, *RequestOptions) error) *cobra.Command {
	var dir, alg string
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Print a certificate request for this host's signing key (a host joining a deployment)",
		Long: `Print a PEM certificate request for the signing key in DIR, creating the
key (signing.key, 0600, in a 0700 DIR) if there is none.

A host that joins a deployment (a second registry host on the same store
and bucket) signs tokens with a key of its own under a certificate from the
deployment's CA, which every registry already trusts; no private key
leaves its host:

  new host:    regctl keys request --dir /opt/regctl/keys > signing.csr
  CA's host:   regctl keys sign --dir /opt/regctl/keys signing.csr > signing.crt
  new host:    regctl keys join --dir /opt/regctl/keys --cert signing.crt \
                 --ca ca.crt --refresh-key refresh.key

ca.crt (public) and refresh.key (a secret: copy it as you would a password)
come from the CA's host's keys directory. The same three steps renew the
certificate later: request reuses the key.`,
		Example: "  regctl keys request --dir /opt/regctl/keys > signing.csr",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := dirAndAlg(dir, alg)
			if err != nil {
				return err
			}
			o := &RequestOptions{IO: f.IO, Dir: dir, Alg: a}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return requestRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "this host's keys directory (required)")
	cmd.Flags().StringVar(&alg, "alg", "es256", "algorithm of a new key: es256 or rs256")
	return cmd
}

func requestRun(_ context.Context, o *RequestOptions) error {
	csr, err := regkeys.Request(o.Dir, o.Alg)
	if err != nil {
		return err
	}
	_, err = o.IO.Out.Write(csr)
	return err
}

// SignOptions are `regctl keys sign`'s settings.
type SignOptions struct {
	IO  *cmdutil.IOStreams
	Now func() time.Time
	Dir string
	CSR string // file, or "-" for stdin
}

// NewCmdSign builds `regctl keys sign`.
func NewCmdSign(f *cmdutil.Factory, runF func(context.Context, *SignOptions) error) *cobra.Command {
	o := &SignOptions{IO: f.IO, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "sign CSR",
		Short: "Issue a signing certificate for a joining host's request, with this deployment's CA",
		Long: `Read a certificate request that regctl keys request printed on another
host (a file, or - for stdin) and print a signing certificate for its key,
issued by the CA in DIR (ca.key and ca.crt, as regctl keys generate wrote
them). The certificate is the one keys generate and keys rotate issue:
valid for a year, and never beyond the CA. See regctl keys request.`,
		Example: "  regctl keys sign --dir /opt/regctl/keys signing.csr > signing.crt",
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Dir == "" {
				return cmdutil.FlagErrorf("--dir is required")
			}
			o.CSR = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return signRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "the keys directory with the CA (required)")
	return cmd
}

func signRun(_ context.Context, o *SignOptions) error {
	var csr []byte
	var err error
	if o.CSR == "-" {
		csr, err = io.ReadAll(io.LimitReader(o.IO.In, 1<<20))
	} else {
		csr, err = os.ReadFile(o.CSR)
	}
	if err != nil {
		return fmt.Errorf("read the certificate request: %w", err)
	}
	leaf, err := regkeys.Sign(o.Dir, csr, o.Now())
	if err != nil {
		return err
	}
	_, err = o.IO.Out.Write(leaf)
	return err
}

// JoinOptions are `regctl keys join`'s settings.
type JoinOptions struct {
	IO                   *cmdutil.IOStreams
	Now                  func() time.Time
	Dir                  string
	Cert, CA, RefreshKey string // files
}

// NewCmdJoin builds `regctl keys join`.
func NewCmdJoin(f *cmdutil.Factory, runF func(context.Context, *JoinOptions) error) *cobra.Command {
	o := &JoinOptions{IO: f.IO, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "join",
		Short: "Install the signing certificate the CA's host issued, completing this host's keys",
		Long: `Complete the keys directory that regctl keys request started: check that
the certificate is for DIR's signing key and chains to the CA certificate,
then write signing.crt, ca.crt, bundle.pem, jwks.json and refresh.key
(0600), and load the result as regctl serve will. regctl serve picks a
renewed certificate up by itself. See regctl keys request.`,
		Example: "  regctl keys join --dir /opt/regctl/keys --cert signing.crt --ca ca.crt --refresh-key refresh.key",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range [][2]string{{"--dir", o.Dir}, {"--cert", o.Cert}, {"--ca", o.CA}, {"--refresh-key", o.RefreshKey}} {
				if f[1] == "" {
					return cmdutil.FlagErrorf("%s is required", f[0])
				}
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return joinRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Dir, "dir", "", "this host's keys directory, made by regctl keys request (required)")
	fl.StringVar(&o.Cert, "cert", "", "the signing certificate regctl keys sign printed (required)")
	fl.StringVar(&o.CA, "ca", "", "the deployment's ca.crt (required)")
	fl.StringVar(&o.RefreshKey, "refresh-key", "", "the deployment's refresh.key, a secret (required)")
	return cmd
}

func joinRun(_ context.Context, o *JoinOptions) error {
	var data [3][]byte
	for i, p := range []string{o.Cert, o.CA, o.RefreshKey} {
		var err error
		if data[i], err = os.ReadFile(p); err != nil {
			return err
		}
	}
	if err := regkeys.Join(o.Dir, data[0], data[1], data[2], o.Now()); err != nil {
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "Joined: %s signs tokens with its own key, under the deployment's CA\n", o.Dir)
	return nil
}
