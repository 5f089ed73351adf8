package proxy

import (
	"crypto/x509"
	"net/netip"
)

func parseAddrForTest(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	return netip.MustParseAddr(s), true
}

func marshalKey(k any) ([]byte, error) { return x509.MarshalPKCS8PrivateKey(k) }
