package httpsyntax

import "testing"

func TestDigits(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "42": 42, "000123": 123, "999999999999999999": 999999999999999999} {
		if n, ok := Digits(s); !ok || n != want {
			t.Errorf("Digits(%q) = %d, %v", s, n, ok)
		}
	}
	for _, s := range []string{"", "+1", "-1", " 1", "1 ", "1,1", "0x10", "1e3", "9999999999999999999"} {
		if _, ok := Digits(s); ok {
			t.Errorf("Digits(%q) accepted", s)
		}
	}
}

func TestHasToken(t *testing.T) {
	vv := []string{"keep-alive, Upgrade", " close\t"}
	for _, tok := range []string{"upgrade", "CLOSE", "keep-alive"} {
		if !HasToken(vv, tok) {
			t.Errorf("%q not found", tok)
		}
	}
	if HasToken(vv, "clo") || HasToken(nil, "close") {
		t.Error("false match")
	}
}

func FuzzDigits(f *testing.F) {
	for _, s := range []string{"0", "12", "+1", "999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, ok := Digits(s); ok && n < 0 {
			t.Fatalf("Digits(%q) = %d", s, n)
		}
	})
}
