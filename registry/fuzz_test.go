package registry

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzValidate(f *testing.F) {
	f.Add("o-1", "orders", "127.0.0.1:8080", "http", "v1", "eu-1", "k", "v", 1)
	f.Add("a:b.c_d", "a.b-c_d", "[::1]:443", "grpc", "", "", "", "", 0)
	f.Add("x", "0rders", "svc.internal.:65535", "h2c", "1.4.0", "z", "app.kubernetes.io/name", "x y", 10000)
	f.Add("", "Orders", "host:0", "ftp", "\x00", "\xff", "-", "\n", -1)
	f.Add("id", "s", "[fe80::1%eth0]:80", "https", "é", "日本", "k:v", "π", 5)
	f.Add("id", "s", "-bad-.host:80", "", "", "", "", "", 0)
	f.Fuzz(func(t *testing.T, id, service, address, protocol, version, zone, key, value string, weight int) {
		in := Instance{ID: id, Service: service, Address: address, Protocol: protocol, Version: version,
			Zone: zone, Weight: weight}
		if key != "" || value != "" {
			in.Metadata = map[string]string{key: value}
		}
		err := Validate(&in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			field, _, ok := strings.Cut(err.Error(), ": ")
			if !ok || !strings.Contains("id service address protocol weight version zone contract metadata", field) {
				t.Fatalf("error does not name a field: %q", err)
			}
			return
		}
		// What passes is safe to use as a name, an address and a label.
		host, port, perr := net.SplitHostPort(in.Address)
		n, _ := strconv.Atoi(port)
		if perr != nil || host == "" || n < 1 || n > 65535 {
			t.Fatalf("accepted address %q", in.Address)
		}
		if len(id) == 0 || len(id) > maxNameLen || strings.ContainsAny(id, "/ %") ||
			len(service) == 0 || len(service) > maxNameLen || strings.ToLower(service) != service {
			t.Fatalf("accepted id %q, service %q", id, service)
		}
		for _, s := range []string{version, zone, value} {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") {
				t.Fatalf("accepted text %q", s)
			}
		}
		if weight < 0 || weight > maxWeight {
			t.Fatalf("accepted weight %d", weight)
		}
	})
}

// FuzzRegisterBody sends arbitrary bodies through the handler's register
// endpoint: every answer is 200/201 with an Instance or a 400/413 problem,
// never a panic or a 500.
func FuzzRegisterBody(f *testing.F) {
	for _, s := range []string{
		`{"address":"127.0.0.1:8080"}`,
		`{"service":"orders","id":"o-1","address":"10.0.0.1:80","ttl":"30s","weight":5,"metadata":{"a":"b"}}`,
		`{"address":"127.0.0.1:80","ttl":12.5,"status":"critical","revision":-1,"registered_at":{}}`,
		`{"address":"127.0.0.1:80"} {}`,
		`{"address":"127.0.0.1:80","ttl":1e400}`,
		`{"address":"127.0.0.1:80","ttl":"-9223372036854775808ns"}`,
		`{"address":"127.0.0.1:80","weight":"1"}`,
		`{"ADDRESS":"127.0.0.1:80","Extra":1}`,
		`[]`, `null`, `"x"`, ``, `{`, "\xff",
	} {
		f.Add([]byte(s))
	}
	m := NewMemory(MemoryOptions{})
	f.Cleanup(func() { _ = m.Close() })
	h, err := NewHandler(m, HandlerOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("PUT", ordersPath, strings.NewReader(string(body)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusCreated:
			var in Instance
			if err := json.Unmarshal(w.Body.Bytes(), &in); err != nil {
				t.Fatalf("answer %q: %v", w.Body, err)
			}
			if in.Service != "orders" || in.ID != "o-1" || in.Status != StatusPassing ||
				in.TTL.D() < DefaultMinTTL || in.TTL.D() > DefaultMaxTTL {
				t.Fatalf("stored %+v from %q", in, body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var p problemDoc
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code || p.Detail == "" {
				t.Fatalf("problem %q: %v", w.Body, err)
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
	})
}

// FuzzDuration decodes a TTL as the API does: what decodes re-encodes to
// the same value.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"10s"`, `10`, `1.5`, `0`, `"1m30s"`, `"-5s"`, `null`, `-1`, `1e9`, `"2562047h47m16.854775807s"`, `"x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Duration
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("marshal %v: %v", time.Duration(d), err)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Fatalf("%s decoded to %v, encoded as %s, decoded back to %v (%v)", s, time.Duration(d), b, time.Duration(back), err)
		}
	})
}
