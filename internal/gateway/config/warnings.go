package config

import (
	"cmp"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Warnings returns likely mistakes in a valid configuration: services no
// route uses, routes that an earlier route shadows so they never match,
// settings that have no effect, and settings unsafe in production.
func Warnings(cfg *Config) []Warning {
	if cfg == nil {
		return nil
	}
	var ws []Warning
	warn := func(path, format string, args ...any) {
		ws = append(ws, Warning{File: cfg.File, Line: cfg.src.lookup(path).line, Field: path, Msg: fmt.Sprintf(format, args...)})
	}
	used := map[string]bool{}
	for _, r := range cfg.Routes {
		used[r.Service] = true
		if r.Mirror != nil {
			used[r.Mirror.Service] = true
		}
	}
	for i, s := range cfg.Services {
		p := joinIndex("services", i)
		if !used[s.Name] {
			warn(p, "service %q is not used by any route", s.Name)
		}
		// A discovered service's endpoints are unknown until run time.
		if sr := s.OutlierDetection.SuccessRate; sr != nil && s.Discovery == nil {
			warnSuccessRate(warn, p+".outlier_detection.success_rate", s.Name, len(s.Endpoints), sr)
		}
		if t := s.Transport.TLS; t != nil {
			if t.InsecureSkipVerify {
				warn(p+".transport.tls.insecure_skip_verify", "certificate verification is off for service %q; never use this in production", s.Name)
			}
			switch d := s.Discovery; {
			case d == nil:
				if !slices.ContainsFunc(s.Endpoints, func(e Endpoint) bool { return strings.HasPrefix(e.URL, "https://") }) {
					warn(p+".transport.tls", "service %q has no https endpoint, so its tls settings have no effect", s.Name)
				}
			case d.DNS != nil && d.DNS.Scheme != "https":
				warn(p+".transport.tls", "service %q discovers %s endpoints (discovery.dns.scheme), so its tls settings have no effect", s.Name, d.DNS.Scheme)
			}
		}
	}
	warnRegistry(cfg, warn)
	warnVersions(cfg, warn)
	for i, r := range cfg.Routes {
		if r.DirectResponse != nil && r.Rewrite != nil {
			warn(joinIndex("routes", i)+".rewrite", "rewrite has no effect on a route with direct_response")
		}
	}
	if cfg.Admin.Enabled() && cfg.Admin.Token == "" && !loopbackAddress(cfg.Admin.Address) {
		warn("admin.address", "the admin API on %s has no token: anyone who reaches it can read the configuration and reload it; set admin.token or listen on 127.0.0.1", cfg.Admin.Address)
	}
	for _, s := range shadowed(cfg.Routes) {
		p := joinIndex("routes", s.later)
		warn(p, "route %q never matches: route %q (line %d) matches every request it does and comes first",
			cfg.Routes[s.later].Name, cfg.Routes[s.earlier].Name, cfg.src.lookup(joinIndex("routes", s.earlier)).line)
	}
	slices.SortStableFunc(ws, func(a, b Warning) int { return cmp.Compare(a.Line, b.Line) })
	return ws
}

type shadow struct{ earlier, later int }

// shadowed finds routes that an earlier route matches every request of
// with equal precedence: the same host set, the same path pattern up to
// parameter names, the same header predicates, and methods that cover the
// later route's: both method lists empty, or both set with the earlier a
// superset. A route with a method list is more specific than one without, so
// an earlier method-less route does not shadow it. A more general path (say "/{rest...}") never shadows
// a more specific one, since the router prefers specific paths.
func shadowed(routes []Route) []shadow {
	groups := map[string][]int{}
	var out []shadow
	for j, r := range routes {
		segs, err := parsePattern(r.Match.Path)
		if err != nil {
			continue
		}
		hosts := make([]string, len(r.Match.Hosts))
		for k, h := range r.Match.Hosts {
			hosts[k] = strings.TrimSuffix(strings.ToLower(h), ".")
		}
		slices.Sort(hosts)
		key := strings.Join(slices.Compact(hosts), ",") + " " + shape(segs)
		for _, i := range groups[key] {
			if methodsCover(routes[i].Match.Methods, r.Match.Methods) && sameHeaders(routes[i].Match.Headers, r.Match.Headers) {
				out = append(out, shadow{i, j})
				break
			}
		}
		groups[key] = append(groups[key], j)
	}
	return out
}

// methodsCover reports whether a route with methods a takes every request
// of one with methods b at equal precedence.
func methodsCover(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	for _, m := range b {
		if !slices.ContainsFunc(a, func(x string) bool { return strings.EqualFold(x, m) }) {
			return false
		}
	}
	return true
}

func sameHeaders(a, b []HeaderMatch) bool {
	ka, kb := headerKeys(a), headerKeys(b)
	return slices.Equal(ka, kb)
}

func headerKeys(hs []HeaderMatch) []string {
	keys := make([]string, 0, len(hs))
	for _, h := range hs {
		k := strings.ToLower(h.Name)
		switch {
		case h.Equals != nil:
			k += "=" + *h.Equals
		case h.Present != nil:
			k += "?" + strconv.FormatBool(*h.Present)
		default:
			k += "~" + h.Regex
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// loopbackAddress reports whether host:port listens on loopback only.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// warnSuccessRate reports success-rate settings that can never eject an
// endpoint of a service with n static endpoints: fewer endpoints than
// minimum_hosts, or a stdev_factor of at least sqrt(n-1), the furthest one
// endpoint's rate can fall below the mean in units of standard deviation.
func warnSuccessRate(warn func(path, format string, args ...any), p, service string, n int, sr *SuccessRate) {
	if n < sr.MinimumHosts {
		warn(p+".minimum_hosts", "service %q has %d endpoints, fewer than minimum_hosts (%d), so success-rate ejection never runs", service, n, sr.MinimumHosts)
		return
	}
	if limit := math.Sqrt(float64(n - 1)); float64(sr.StdevFactor) >= limit {
		warn(p+".stdev_factor", "with %d endpoints no success rate can fall %.2f standard deviations below the mean (at most %.2f), so success-rate ejection never ejects; lower stdev_factor", n, float64(sr.StdevFactor), limit)
	}
}

// warnRegistry reports a registry anyone may write to, and registry
// settings that have no effect.
func warnRegistry(cfg *Config, warn func(path, format string, args ...any)) {
	r := cfg.Registry
	if !r.IsEnabled() {
		return
	}
	// Without registry tokens, writers need the admin token if there is one.
	if len(r.Tokens) == 0 && cfg.Admin.Token == "" && cfg.Admin.Enabled() && !loopbackAddress(cfg.Admin.Address) {
		warn("registry.tokens", "the registry has no tokens and the admin API listens on %s without a token: anyone who can reach the admin listener can register instances; set registry.tokens (or admin.token) or listen on 127.0.0.1", cfg.Admin.Address)
	}
	if r.Etcd != nil && r.Backend == "memory" {
		warn("registry.etcd", "etcd is set but backend is memory, so the etcd settings are unused; set backend: etcd or remove etcd")
	}
	if cfg.Admin.Enabled() || r.Backend != "memory" {
		return
	}
	for i, s := range cfg.Services {
		if d := s.Discovery; d != nil && d.Registry != nil && d.Registry.URL == "" {
			warn(joinIndex("services", i)+".discovery.registry", "the admin listener is off, so no instance can register with this gateway's in-memory registry and service %q never has endpoints", s.Name)
		}
	}
}

// warnVersions reports a route version, split version or mirror version
// that no endpoint of the service can have, and splits with a single
// version.
func warnVersions(cfg *Config, warn func(path, format string, args ...any)) {
	services := make(map[string]*Service, len(cfg.Services))
	for i := range cfg.Services {
		services[cfg.Services[i].Name] = &cfg.Services[i]
	}
	missing := func(path, service, version, effect string) {
		s := services[service]
		if s == nil || version == "" {
			return
		}
		if known, ok := knownVersions(s); ok && !known[version] {
			warn(path, "service %q has no endpoints of version %q (%s), so %s", service, version, describeVersions(known), effect)
		}
	}
	for i, r := range cfg.Routes {
		p := joinIndex("routes", i)
		missing(p+".version", r.Service, r.Version, "the route always answers 503")
		for j, sp := range r.Split {
			missing(joinIndex(p+".split", j)+".version", r.Service, sp.Version, "its share goes to the other versions")
		}
		if len(r.Split) == 1 {
			warn(p+".split", "the split has a single version, which gets every request; write version: %s instead", r.Split[0].Version)
		}
		if m := r.Mirror; m != nil {
			missing(p+".mirror.version", m.Service, m.Version, "every copy fails")
			if m.Service == r.Service && m.Version == r.Version && len(r.Split) == 0 {
				warn(p+".mirror", "the copies go to the same endpoints as the route's own requests; set mirror.version or mirror.service")
			}
		}
	}
}

// knownVersions returns the versions the endpoints of s can have, and
// whether the file tells: the "version" metadata of its static endpoints,
// the version DNS discovery adds to every record, or the version registry
// or etcd discovery keeps. Other discovered versions are known only at run
// time.
func knownVersions(s *Service) (map[string]bool, bool) {
	known := map[string]bool{}
	d := s.Discovery
	switch {
	case d == nil:
		for _, e := range s.Endpoints {
			if v := e.Metadata["version"]; v != "" {
				known[v] = true
			}
		}
	case d.DNS != nil:
		if v := d.DNS.Metadata["version"]; v != "" {
			known[v] = true
		}
	case d.Registry != nil && d.Registry.Version != "":
		known[d.Registry.Version] = true
	case d.Etcd != nil && d.Etcd.Version != "":
		known[d.Etcd.Version] = true
	default:
		return nil, false
	}
	return known, true
}

func describeVersions(known map[string]bool) string {
	if len(known) == 0 {
		return "none of its endpoints has a version"
	}
	vs := make([]string, 0, len(known))
	for v := range known {
		vs = append(vs, strconv.Quote(v))
	}
	slices.Sort(vs)
	return "its endpoints' versions: " + strings.Join(vs, ", ")
}
