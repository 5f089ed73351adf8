package config

import (
	"net/netip"
	"testing"
)

// FuzzParseCIDR checks that ParseCIDR never panics and that what it
// accepts is a masked, unmapped, zone-free prefix containing the address
// it was written with.
func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3", "::ffff:10.0.0.0/104", "2001:db8::/32", "fe80::1%eth0", "1.2.3.4/33", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCIDR(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParseCIDR(%q) = %v", s, p)
		}
		if a, err := netip.ParseAddr(s); err == nil && !p.Contains(a.Unmap()) {
			t.Fatalf("ParseCIDR(%q) = %v does not contain the address", s, p)
		}
	})
}
