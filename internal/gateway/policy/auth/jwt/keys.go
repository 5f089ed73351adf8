package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// MinRSABits is the smallest RSA modulus accepted for signatures.
const MinRSABits = 2048

// Key is one public verification key of an issuer.
type Key struct {
	// KID is the key id tokens name in their "kid" header; empty matches
	// any token.
	KID string
	// Alg, when set (a JWK's "alg"), is the only algorithm the key may be
	// used with.
	Alg string
	// Public is an *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public any
}

// fits reports whether k may verify a signature made with alg.
func (k *Key) fits(alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	switch pk := k.Public.(type) {
	case *rsa.PublicKey:
		return (alg[0] == 'R' || alg[0] == 'P') && pk.N.BitLen() >= MinRSABits
	case *ecdsa.PublicKey:
		return alg == "ES256" && pk.Curve == elliptic.P256() || alg == "ES384" && pk.Curve == elliptic.P384()
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

func (k *Key) equal(o *Key) bool {
	if k.KID != o.KID || k.Alg != o.Alg {
		return false
	}
	e, ok := k.Public.(interface{ Equal(crypto any) bool })
	return ok && e.Equal(o.Public)
}

// ParsePEM returns the public key in the first PEM block of data that holds
// a public key or a certificate. A private key is refused: the gateway only
// ever needs the public half.
func ParsePEM(data []byte) (any, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM public key or certificate found")
		}
		switch b.Type {
		case "PUBLIC KEY":
			return x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			return x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, err
			}
			return c.PublicKey, nil
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return nil, errors.New("the PEM data holds a private key; give only the public key")
		}
	}
}

// maxJWKSBytes bounds a fetched key set.
const maxJWKSBytes = 1 << 20

type jwkDoc struct {
	Keys []json.RawMessage `json:"keys"`
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS returns the signature keys of a JSON Web Key Set (RFC 7517).
// Keys that cannot verify signatures here are skipped: symmetric ("oct")
// keys, keys whose "use" is not "sig", unknown key types and curves, and RSA
// keys under MinRSABits. It fails when data is not a key set or holds no
// usable key.
func ParseJWKS(data []byte) ([]*Key, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("key set is larger than %d bytes", maxJWKSBytes)
	}
	var doc jwkDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("key set is not valid JSON: %w", err)
	}
	var keys []*Key
	var firstErr error
	for _, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		k, err := j.key()
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if k != nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		if firstErr != nil {
			return nil, fmt.Errorf("key set holds no usable signature key: %w", firstErr)
		}
		return nil, errors.New("key set holds no usable signature key")
	}
	return keys, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// key converts a JWK; it returns nil, nil for keys that are skipped.
func (j *jwk) key() (*Key, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, nil
	}
	k := &Key{KID: j.Kid, Alg: j.Alg}
	switch j.Kty {
	case "RSA":
		n, err1 := b64Int(j.N)
		e, err2 := b64Int(j.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("RSA key %q: %w", j.Kid, err)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, fmt.Errorf("RSA key %q: invalid exponent", j.Kid)
		}
		if n.BitLen() < MinRSABits {
			return nil, nil
		}
		k.Public = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		size := map[string]int{"P-256": 32, "P-384": 48}[j.Crv]
		if size == 0 {
			return nil, nil
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err := errors.Join(err1, err2); err != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("EC key %q: invalid coordinates", j.Kid)
		}
		curve := elliptic.P256()
		if j.Crv == "P-384" {
			curve = elliptic.P384()
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("EC key %q: %w", j.Kid, err)
		}
		k.Public = pk
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key %q: invalid x", j.Kid)
		}
		k.Public = ed25519.PublicKey(x)
	default:
		return nil, nil
	}
	return k, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.Strict().DecodeString(s) }

func b64Int(s string) (*big.Int, error) {
	b, err := b64(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("invalid base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}
