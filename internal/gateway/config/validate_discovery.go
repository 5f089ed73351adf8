package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Bounds of the registry, discovery and version-routing settings.
const (
	// MinRegistryTokenLen is the length a registry token (registration or
	// read token) must have at least.
	MinRegistryTokenLen = 16
	// MaxSplits is the most versions one route's split may name.
	MaxSplits = 64
	// MaxSplitWeight is the largest weight of one share of a route's split.
	MaxSplitWeight = 10000
)

// The rules below repeat the ones the registry applies to a registration
// (package registry), so a filter or route that no instance could ever
// match is refused when the file is read. The registry package is not
// imported: it would bring its storage clients into every user of config.
const (
	maxVersionLen       = 128
	maxMetadataPairs    = 64
	maxMetadataKeyLen   = 63
	maxMetadataValueLen = 256
)

// registryServiceRE is the registry's rule for service names: 1 to 128
// characters of [a-z0-9._-], starting with a letter or digit.
var registryServiceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

const registryServiceRule = "1 to 128 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"

// registry checks the registry section.
func (v *validator) registry() {
	r := &v.cfg.Registry
	const p = "registry"
	switch r.Backend {
	case "", "memory":
	case "etcd":
		if r.Etcd == nil {
			v.errorf(p+".etcd", "missing required field: backend \"etcd\" needs etcd.endpoints, the cluster's client URLs")
		}
	default:
		v.errorf(p+".backend", "invalid backend %q: use \"memory\" or \"etcd\"%s", r.Backend, suggest(r.Backend, []string{"memory", "etcd"}))
	}
	if e := r.Etcd; e != nil {
		v.etcd(p+".etcd", e.Endpoints, e.Prefix, e.Username, e.Password)
	}
	v.ttls(p, r)
	v.registryTokens(p+".tokens", r.Tokens)
	if r.ReadToken != "" {
		v.registrySecret(p+".read_token", r.ReadToken)
	}
}

// ttls checks min_ttl <= default_ttl <= max_ttl, defaults included.
func (v *validator) ttls(p string, r *Registry) {
	lo := durationField{p + ".min_ttl", r.MinTTL, DefaultRegistryMinTTL}
	def := durationField{p + ".default_ttl", r.DefaultTTL, DefaultRegistryTTL}
	hi := durationField{p + ".max_ttl", r.MaxTTL, DefaultRegistryMaxTTL}
	if v.notLonger(lo, hi) && v.notLonger(lo, def) {
		v.notLonger(def, hi)
	}
}

// durationField is a duration whose zero value means a default.
type durationField struct {
	path string
	d    Duration
	def  time.Duration
}

func (f durationField) value() time.Duration {
	if f.d == 0 {
		return f.def
	}
	return f.d.D()
}

func (f durationField) describe() string {
	s := lastField(f.path) + " " + Duration(f.value()).String()
	if f.d == 0 {
		s += " (the default)"
	}
	return s
}

// notLonger reports whether lo is at most hi; otherwise it reports the
// problem at the one of them the file sets (lo when it sets both).
func (v *validator) notLonger(lo, hi durationField) bool {
	if lo.value() <= hi.value() {
		return true
	}
	at := lo.path
	if lo.d == 0 {
		at = hi.path
	}
	v.errorf(at, "%s is longer than %s", lo.describe(), hi.describe())
	return false
}

func lastField(path string) string {
	return path[strings.LastIndexByte(path, '.')+1:]
}

func (v *validator) registryTokens(p string, tokens []RegistryToken) {
	names := map[string]string{}
	secrets := map[string]string{}
	for i, t := range tokens {
		tp := joinIndex(p, i)
		v.name("registry token", tp, t.Name, names)
		if t.Token == "" {
			v.errorf(tp+".token", "missing required field: the secret, at least %d characters; write it as ${VAR}", MinRegistryTokenLen)
		} else if v.registrySecret(tp+".token", t.Token) {
			if first, dup := secrets[t.Token]; dup {
				v.errorf(tp+".token", "the same secret as %s (line %d); give every token its own", parentPath(first), v.line(first))
			} else {
				secrets[t.Token] = tp + ".token"
			}
		}
		if len(t.Services) == 0 {
			v.errorf(tp+".services", "missing required field: the services the token may register, such as [orders] or [\"billing-*\"] (\"*\" is every service)")
		}
		seen := map[string]bool{}
		for j, s := range t.Services {
			sp := joinIndex(tp+".services", j)
			switch {
			case !validServicePattern(s):
				v.errorf(sp, "invalid service %q: write a registry service name (%s) or a prefix of one ending in \"*\", such as \"billing-*\"", s, registryServiceRule)
			case seen[s]:
				v.errorf(sp, "duplicate service %q", s)
			}
			seen[s] = true
		}
	}
}

// validServicePattern reports whether s is a registry service name, or a
// prefix of one followed by a single "*" ("*" alone is every service).
func validServicePattern(s string) bool {
	if s == "*" {
		return true
	}
	prefix, _ := strings.CutSuffix(s, "*")
	return !strings.Contains(prefix, "*") && registryServiceRE.MatchString(prefix)
}

// registrySecret checks a registry token; it never shows the value.
func (v *validator) registrySecret(p, secret string) bool {
	switch {
	case len(secret) < MinRegistryTokenLen:
		v.errorf(p, "a token must be at least %d characters long; this one has %d", MinRegistryTokenLen, len(secret))
	case strings.ContainsFunc(secret, unicode.IsSpace):
		v.errorf(p, "a token must not contain white space")
	default:
		return true
	}
	return false
}

// etcd checks the settings of an etcd cluster (registry.etcd or a
// service's discovery.etcd).
func (v *validator) etcd(p string, endpoints []string, prefix, username, password string) {
	if len(endpoints) == 0 {
		v.errorf(p+".endpoints", "missing required field: at least one client URL of the cluster, such as \"http://127.0.0.1:2379\"")
	}
	seen := map[string]string{}
	for i, raw := range endpoints {
		ep := joinIndex(p+".endpoints", i)
		if !v.etcdURL(ep, raw) {
			continue
		}
		if first, dup := seen[raw]; dup {
			v.errorf(ep, "duplicate endpoint %q; first listed at line %d", v.shown(ep, raw), v.line(first))
		}
		seen[raw] = ep
	}
	if prefix != "" && (!strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/")) {
		v.errorf(p+".prefix", "prefix %q must start and end with \"/\", such as %q", prefix, DefaultEtcdPrefix)
	}
	if password != "" && username == "" {
		v.errorf(p+".username", "missing required field: password is set, so username is needed too")
	}
}

// etcdURL checks one client URL of an etcd cluster: http or https,
// host:port, nothing else.
func (v *validator) etcdURL(p, raw string) bool {
	u, err := url.Parse(raw)
	shown := v.shown(p, raw)
	switch {
	case raw == "":
		v.errorf(p, "empty URL: write scheme://host:port, such as \"http://127.0.0.1:2379\"")
	case err != nil:
		v.errorf(p, "invalid URL %q: %v", shown, unwrapURLError(err))
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(p, "invalid URL %q: scheme must be http or https, such as \"http://127.0.0.1:2379\"", shown)
	case u.Opaque != "" || u.Host == "":
		v.errorf(p, "invalid URL %q: write scheme://host:port", shown)
	case u.User != nil:
		v.errorf(p, "invalid URL %q: user information is not allowed; set username and password", shown)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		v.errorf(p, "invalid URL %q: a path, query or fragment is not allowed", shown)
	case u.Port() == "":
		v.errorf(p, "invalid URL %q: missing port; write %s://%s:PORT (etcd listens on 2379 by default)", shown, u.Scheme, u.Host)
	default:
		return v.urlHostPort(p, shown, u)
	}
	return false
}

// urlHostPort checks the host and port of a parsed URL.
func (v *validator) urlHostPort(p, shown string, u *url.URL) bool {
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			v.errorf(p, "invalid URL %q: port must be a number from 1 to 65535", shown)
			return false
		}
	}
	if h := u.Hostname(); checkHost(strings.ToLower(h)) != nil || strings.HasPrefix(h, "*") {
		v.errorf(p, "invalid URL %q: invalid host %q", shown, h)
		return false
	}
	return true
}

// serviceSource checks that a service has exactly one of endpoints and
// discovery.
func (v *validator) serviceSource(p string, s *Service) {
	switch {
	case len(s.Endpoints) > 0 && s.Discovery != nil:
		v.errorf(p+".discovery", "endpoints and discovery are mutually exclusive: list the endpoints or discover them, not both")
	case len(s.Endpoints) == 0 && s.Discovery == nil && !v.failed[p+".endpoints"] && !v.failed[p+".discovery"]:
		v.errorf(p+".endpoints", "missing required field: a service needs endpoints (at least one, with a url) or discovery")
	}
	if s.Discovery != nil {
		v.discovery(p+".discovery", s)
	}
}

func (v *validator) discovery(p string, s *Service) {
	d := s.Discovery
	n := 0
	for _, set := range []bool{d.Registry != nil, d.DNS != nil, d.Etcd != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		v.errorf(p, "missing required field: set one of registry, dns and etcd")
	case n > 1:
		v.errorf(p, "set only one of registry, dns and etcd, not %d", n)
	}
	if rd := d.Registry; rd != nil {
		rp := p + ".registry"
		v.registryService(rp, rd.Service, s.Name)
		v.version(rp+".version", rd.Version)
		v.metadata(rp+".metadata", rd.Metadata)
		switch {
		case rd.URL != "":
			v.registryURL(rp+".url", rd.URL)
		case !v.cfg.Registry.IsEnabled():
			v.errorf(rp, "the gateway's own registry is disabled (registry.enabled is false): enable it, or set url to a remote registry")
		}
		if rd.Token != "" {
			if rd.URL == "" {
				v.errorf(rp+".token", "a token is sent only to a remote registry: set url, or remove token")
			} else if strings.ContainsFunc(rd.Token, unicode.IsSpace) {
				v.errorf(rp+".token", "a token must not contain white space")
			}
		}
	}
	if ed := d.Etcd; ed != nil {
		ep := p + ".etcd"
		v.etcd(ep, ed.Endpoints, ed.Prefix, ed.Username, ed.Password)
		v.registryService(ep, ed.Service, s.Name)
		v.version(ep+".version", ed.Version)
		v.metadata(ep+".metadata", ed.Metadata)
	}
	if dd := d.DNS; dd != nil {
		v.dnsDiscovery(p+".dns", dd)
	}
}

// registryService checks the registered service name a discovery reads:
// the one given, or else the gateway service's own name.
func (v *validator) registryService(p, given, name string) {
	switch {
	case given != "":
		if !registryServiceRE.MatchString(given) {
			v.errorf(p+".service", "invalid registry service name %q: use %s", given, registryServiceRule)
		}
	case name != "" && isName(name) && !registryServiceRE.MatchString(name):
		// An invalid name is reported as such; this is a valid gateway
		// name the registry cannot hold (upper case, say).
		v.errorf(p, "the registered service name defaults to the service's name %q, which the registry cannot hold (%s); set service", name, registryServiceRule)
	}
}

// registryURL checks the base URL of a remote registry's API.
func (v *validator) registryURL(p, raw string) {
	u, err := url.Parse(raw)
	shown := v.shown(p, raw)
	switch {
	case err != nil:
		v.errorf(p, "invalid URL %q: %v", shown, unwrapURLError(err))
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(p, "invalid URL %q: scheme must be http or https, such as \"http://10.0.0.5:9901\"", shown)
	case u.Opaque != "" || u.Host == "":
		v.errorf(p, "invalid URL %q: write the base URL of the registry's gateway, such as \"http://10.0.0.5:9901\"", shown)
	case u.User != nil:
		v.errorf(p, "invalid URL %q: user information is not allowed; set token", shown)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		v.errorf(p, "invalid URL %q: a query or fragment is not allowed", shown)
	default:
		v.urlHostPort(p, shown, u)
	}
}

// version checks a version name: an instance's version as the registry
// keeps it. Empty means none and is not checked here.
func (v *validator) version(p, version string) {
	switch {
	case len(version) > maxVersionLen:
		v.errorf(p, "version is %d characters long; at most %d are allowed", len(version), maxVersionLen)
	case strings.ContainsFunc(version, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.errorf(p, "version %q must not contain white space or control characters", version)
	}
}

// metadata checks labels within the registry's bounds.
func (v *validator) metadata(p string, m map[string]string) {
	if len(m) > maxMetadataPairs {
		v.errorf(p, "%d pairs is more than the %d allowed", len(m), maxMetadataPairs)
	}
	for _, k := range sortedKeys(m) {
		kp := joinKey(p, k)
		switch {
		case k == "":
			v.errorf(p, "empty metadata key")
		case len(k) > maxMetadataKeyLen:
			v.errorf(kp, "key %q is longer than %d characters", k, maxMetadataKeyLen)
		case len(m[k]) > maxMetadataValueLen:
			v.errorf(kp, "the value is %d bytes long; at most %d are allowed", len(m[k]), maxMetadataValueLen)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// dnsType returns the record type a DNS discovery resolves: the one set
// (in any case), or SRV for a name starting with "_" and A otherwise.
func dnsType(d *DNSDiscovery) string {
	switch {
	case d.Type != "":
		return strings.ToUpper(d.Type)
	case strings.HasPrefix(d.Name, "_"):
		return "SRV"
	}
	return "A"
}

func (v *validator) dnsDiscovery(p string, d *DNSDiscovery) {
	switch {
	case d.Name == "":
		v.errorf(p+".name", "missing required field: the name to resolve, such as \"orders.shop.svc.cluster.local\"")
	default:
		if err := checkDNSName(d.Name); err != nil {
			v.errorf(p+".name", "%v", err)
		}
	}
	typ := dnsType(d)
	switch typ {
	case "A", "AAAA":
		if d.Port == 0 && !v.failed[p+".port"] {
			v.errorf(p+".port", "missing required field: the endpoints' port; %s records hold only addresses", typ)
		}
	case "SRV":
		if d.Port != 0 {
			v.errorf(p+".port", "SRV records give each endpoint's port; remove port")
		}
	default:
		v.errorf(p+".type", "invalid type %q: use A, AAAA or SRV%s", d.Type, suggest(d.Type, []string{"A", "AAAA", "SRV"}))
	}
	if d.Port < 0 || d.Port > 65535 {
		v.errorf(p+".port", "port %d must be a number from 1 to 65535", d.Port)
	}
	switch d.Scheme {
	case "", "http", "https", "h2c":
	default:
		v.errorf(p+".scheme", "invalid scheme %q: use http, https or h2c%s", d.Scheme, suggest(d.Scheme, []string{"http", "https", "h2c"}))
	}
	for i, r := range d.Resolvers {
		v.resolver(joinIndex(p+".resolvers", i), r)
	}
	v.notLonger(durationField{p + ".min_interval", d.MinInterval, DefaultDNSMinInterval},
		durationField{p + ".interval", d.Interval, DefaultDNSInterval})
	v.metadata(p+".metadata", d.Metadata)
	v.version(joinKey(p+".metadata", "version"), d.Metadata["version"])
}

// checkDNSName checks a name to resolve: labels of letters, digits, '-'
// and '_' (SRV names start with "_service._proto"), an optional trailing
// dot, at most 253 characters.
func checkDNSName(name string) error {
	n := strings.TrimSuffix(name, ".")
	if _, err := netip.ParseAddr(strings.Trim(n, "[]")); err == nil {
		return fmt.Errorf("%q is an IP address, not a name to resolve; list it in endpoints instead", name)
	}
	if len(n) > 253 {
		return fmt.Errorf("name %q is longer than 253 characters", name)
	}
	for _, label := range strings.Split(n, ".") {
		if err := checkLabel(strings.ToLower(label)); err != nil {
			return fmt.Errorf("invalid name %q: %w", name, err)
		}
	}
	return nil
}

// resolver checks a DNS server address, host:port.
func (v *validator) resolver(p, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		v.errorf(p, "invalid resolver %q: write host:port, such as \"10.0.0.2:53\" or \"[fd00::2]:53\"", addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		v.errorf(p, "invalid port %q in resolver %q: use a number from 1 to 65535", port, addr)
		return
	}
	if _, err := netip.ParseAddr(host); err != nil && (strings.Contains(host, "*") || checkHost(strings.ToLower(host)) != nil) {
		v.errorf(p, "invalid host %q in resolver %q", host, addr)
	}
}

// traffic checks a route's version, split and mirror; services maps the
// service names to their paths and names lists them sorted.
func (v *validator) traffic(p string, r *Route, services map[string]string, names []string) {
	if r.DirectResponse != nil {
		for _, f := range []struct {
			name string
			set  bool
		}{{"version", r.Version != ""}, {"split", r.Split != nil}, {"mirror", r.Mirror != nil}} {
			if f.set {
				v.errorf(p+"."+f.name, "%s applies only to routes with a service, not to a direct_response", f.name)
			}
		}
		return
	}
	v.version(p+".version", r.Version)
	if r.Split != nil {
		if r.Version != "" {
			v.errorf(p+".split", "set at most one of version and split")
		}
		v.split(p+".split", r.Split)
	}
	if m := r.Mirror; m != nil {
		v.mirror(p+".mirror", m, services, names)
	}
}

func (v *validator) split(p string, split []Split) {
	if len(split) == 0 {
		v.errorf(p, "missing required field: at least one version with a weight, such as [{version: v1, weight: 90}, {version: v2, weight: 10}]")
	}
	if len(split) > MaxSplits {
		v.errorf(p, "%d versions; at most %d", len(split), MaxSplits)
	}
	seen := map[string]string{}
	for i, s := range split {
		sp := joinIndex(p, i)
		switch first, dup := seen[s.Version]; {
		case s.Version == "":
			v.errorf(sp+".version", "missing required field: the version (metadata \"version\") this share goes to")
		case dup:
			v.errorf(sp+".version", "duplicate version %q; first listed at line %d", s.Version, v.line(first))
		default:
			seen[s.Version] = sp + ".version"
			v.version(sp+".version", s.Version)
		}
		switch {
		case s.Weight == 0 && !v.cfg.src.has(sp+".weight"):
			v.errorf(sp+".weight", "missing required field: the share's weight, 1 to %d", MaxSplitWeight)
		case s.Weight < 1 || s.Weight > MaxSplitWeight:
			v.errorf(sp+".weight", "weight %d must be 1 to %d", s.Weight, MaxSplitWeight)
		}
	}
}

func (v *validator) mirror(p string, m *Mirror, services map[string]string, names []string) {
	if m.Service != "" {
		if _, ok := services[m.Service]; !ok {
			v.errorf(p+".service", "unknown service %q%s", m.Service, suggest(m.Service, names))
		}
	}
	v.version(p+".version", m.Version)
	if m.Percent != 0 || v.cfg.src.has(p+".percent") {
		if m.Percent <= 0 || m.Percent > 100 {
			v.errorf(p+".percent", "percent %v must be above 0 and at most 100", float64(m.Percent))
		}
	}
	if m.MaxBodyBytes < 0 {
		v.errorf(p+".max_body_bytes", "must not be negative: a copy's body is always held in memory")
	}
	if m.MaxInFlight < 0 || m.MaxInFlight == 0 && v.cfg.src.has(p+".max_in_flight") {
		v.errorf(p+".max_in_flight", "max_in_flight %d must be at least 1", m.MaxInFlight)
	}
}
