package certs

import (
	"context"
	"crypto/rand"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"sync"
)

// The RFC 7919 finite-field Diffie-Hellman groups (appendix A), generator
// 2. Each prime is p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1;
// dhparams_test.go recomputes them from that formula.
var ffdhePrimes = map[int]string{
	2048: "" +
		"FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695" +
		"A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A" +
		"D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935" +
		"984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A" +
		"BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4" +
		"AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61" +
		"9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005" +
		"C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF" +
		"",
	3072: "" +
		"FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695" +
		"A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A" +
		"D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935" +
		"984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A" +
		"BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4" +
		"AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61" +
		"9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005" +
		"C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B" +
		"BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C" +
		"AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF" +
		"5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E" +
		"0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B66C62E37FFFFFFFFFFFFFFFF" +
		"",
	4096: "" +
		"FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695" +
		"A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A" +
		"D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935" +
		"984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A" +
		"BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4" +
		"AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61" +
		"9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005" +
		"C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B" +
		"BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C" +
		"AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF" +
		"5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E" +
		"0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B669E1EF16E6F52C3164DF4FB" +
		"7930E9E4E58857B6AC7D5F42D69F6D187763CF1D5503400487F55BA57E31CC7A" +
		"7135C886EFB4318AED6A1E012D9E6832A907600A918130C46DC778F971AD0038" +
		"092999A333CB8B7A1A1DB93D7140003C2A4ECEA9F98D0ACC0A8291CDCEC97DCF" +
		"8EC9B55A7F88A46B4DB5A851F44182E1C68A007E5E655F6AFFFFFFFFFFFFFFFF" +
		"",
}

// FFDHEBits are the sizes of the RFC 7919 groups regctl writes.
var FFDHEBits = []int{2048, 3072, 4096}

// DHParams are Diffie-Hellman parameters: a prime modulus and a generator.
type DHParams struct {
	P *big.Int
	G *big.Int
}

// dhParameter is PKCS #3's DHParameter, the body of a PEM "DH PARAMETERS"
// block (what nginx's ssl_dhparam and openssl dhparam read).
type dhParameter struct {
	Prime *big.Int
	Base  *big.Int
}

// dhParameterIn also accepts the optional privateValueLength.
type dhParameterIn struct {
	Prime              *big.Int
	Base               *big.Int
	PrivateValueLength int `asn1:"optional"`
}

// FFDHE returns the RFC 7919 group ffdhe<bits> (2048, 3072 or 4096).
func FFDHE(bits int) (*DHParams, error) {
	h, ok := ffdhePrimes[bits]
	if !ok {
		return nil, fmt.Errorf("no RFC 7919 group of %d bits: use 2048, 3072 or 4096", bits)
	}
	p, _ := new(big.Int).SetString(h, 16)
	return &DHParams{P: p, G: big.NewInt(2)}, nil
}

// Named returns "ffdhe2048" (3072, 4096) when d is that RFC 7919 group,
// and "" otherwise.
func (d *DHParams) Named() string {
	if d.G == nil || d.G.Cmp(big.NewInt(2)) != 0 {
		return ""
	}
	for bits := range ffdhePrimes {
		if g, _ := FFDHE(bits); g.P.Cmp(d.P) == 0 {
			return fmt.Sprintf("ffdhe%d", bits)
		}
	}
	return ""
}

// PEM encodes d as a PEM "DH PARAMETERS" block.
func (d *DHParams) PEM() ([]byte, error) {
	der, err := asn1.Marshal(dhParameter{Prime: d.P, Base: d.G})
	if err != nil {
		return nil, fmt.Errorf("encode DH parameters: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "DH PARAMETERS", Bytes: der}), nil
}

// ParseDHParams parses a PEM "DH PARAMETERS" block.
func ParseDHParams(data []byte) (*DHParams, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != "DH PARAMETERS" {
		return nil, fmt.Errorf("unexpected PEM block %q, want \"DH PARAMETERS\"", block.Type)
	}
	var in dhParameterIn
	rest, err := asn1.Unmarshal(block.Bytes, &in)
	if err != nil {
		return nil, fmt.Errorf("parse DH parameters: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("parse DH parameters: trailing data")
	}
	if in.Prime == nil || in.Prime.Sign() <= 0 || in.Base == nil || in.Base.Sign() <= 0 {
		return nil, errors.New("parse DH parameters: prime and generator must be positive")
	}
	return &DHParams{P: in.Prime, G: in.Base}, nil
}

// Check verifies that P is a safe prime (P and (P-1)/2 prime, 20
// Miller-Rabin rounds plus Baillie-PSW each) and that 1 < G < P-1.
func (d *DHParams) Check() error {
	one := big.NewInt(1)
	pm1 := new(big.Int).Sub(d.P, one)
	if d.G.Cmp(one) <= 0 || d.G.Cmp(pm1) >= 0 {
		return errors.New("generator out of range")
	}
	if !d.P.ProbablyPrime(20) {
		return errors.New("modulus is not prime")
	}
	if !new(big.Int).Rsh(d.P, 1).ProbablyPrime(20) {
		return errors.New("modulus is not a safe prime: (p-1)/2 is not prime")
	}
	return nil
}

// Progress events of GenerateDHParams, in the style of openssl dhparam.
const (
	ProgressCandidate = '.' // a candidate passed the sieve but not the primality tests
	ProgressHalf      = '+' // q = (p-1)/2 is probably prime, p is not
	ProgressFound     = '*' // a safe prime was found and verified
)

// GenerateDHParams computes fresh DH parameters: a random safe prime p of
// exactly bits bits with p ≡ 23 (mod 24), so that the generator 2 has
// order (p-1)/2 (what openssl dhparam -2 produces). The search uses every
// CPU; progress, if non-nil, is called (from several goroutines, never
// concurrently) with the Progress* events. It returns ctx's error when
// cancelled.
func GenerateDHParams(ctx context.Context, bits int, progress func(rune)) (*DHParams, error) {
	if bits < 512 || bits > 8192 {
		return nil, fmt.Errorf("DH parameter size %d bits out of range 512-8192", bits)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	report := func(r rune) {
		if progress != nil {
			mu.Lock()
			progress(r)
			mu.Unlock()
		}
	}
	found := make(chan *big.Int, 1)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := searchSafePrime(ctx, bits, report)
			if err != nil {
				select {
				case errc <- err:
				default:
				}
				return
			}
			select {
			case found <- p:
			default:
			}
			cancel()
		}()
	}
	wg.Wait()
	select {
	case p := <-found:
		report(ProgressFound)
		return &DHParams{P: p, G: big.NewInt(2)}, nil
	default:
	}
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
	default:
	}
	return nil, ctx.Err()
}

// smallPrimes are the odd primes below 2^13, for the sieve.
var smallPrimes = func() []uint64 {
	const n = 1 << 13
	composite := make([]bool, n)
	var ps []uint64
	for i := 3; i < n; i += 2 {
		if composite[i] {
			continue
		}
		ps = append(ps, uint64(i))
		for j := i * i; j < n; j += 2 * i {
			composite[j] = true
		}
	}
	return ps
}()

// searchSafePrime looks for q ≡ 11 (mod 12) with q and p = 2q+1 prime,
// walking q in steps of 12 from a random start and sieving out candidates
// where q or p has a small factor.
func searchSafePrime(ctx context.Context, bits int, report func(rune)) (*big.Int, error) {
	two := big.NewInt(2)
	one := big.NewInt(1)
	const maxDelta = 1 << 20
	for {
		// q in [2^(bits-2), 2^(bits-1)), so p = 2q+1 has exactly bits bits.
		q, err := rand.Int(rand.Reader, new(big.Int).Lsh(one, uint(bits-2)))
		if err != nil {
			return nil, fmt.Errorf("random: %w", err)
		}
		q.SetBit(q, bits-2, 1)
		m := new(big.Int).Mod(q, big.NewInt(12)).Int64()
		q.Add(q, big.NewInt((11-m+12)%12))
		residues := make([]uint64, len(smallPrimes))
		r := new(big.Int)
		for i, sp := range smallPrimes {
			residues[i] = r.Mod(q, new(big.Int).SetUint64(sp)).Uint64()
		}
	next:
		for delta := uint64(0); delta < maxDelta; delta += 12 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for i, sp := range smallPrimes {
				rq := (residues[i] + delta) % sp
				// q divisible by sp, or p = 2q+1 divisible by sp.
				if rq == 0 || (2*rq+1)%sp == 0 {
					continue next
				}
			}
			cq := new(big.Int).Add(q, new(big.Int).SetUint64(delta))
			if cq.BitLen() != bits-1 {
				break
			}
			cp := new(big.Int).Lsh(cq, 1)
			cp.Add(cp, one)
			// Fermat tests first: cheap and rarely wrong.
			if new(big.Int).Exp(two, new(big.Int).Sub(cq, one), cq).Cmp(one) != 0 {
				report(ProgressCandidate)
				continue
			}
			if new(big.Int).Exp(two, new(big.Int).Sub(cp, one), cp).Cmp(one) != 0 {
				report(ProgressHalf)
				continue
			}
			if cq.ProbablyPrime(20) && cp.ProbablyPrime(20) {
				return cp, nil
			}
			report(ProgressHalf)
		}
	}
}
