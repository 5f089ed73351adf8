package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// sourceCollector exports the state of the serving snapshot's discovery
// sources at scrape time. Labels are the service name and provider kind,
// both from the configuration.
type sourceCollector struct {
	sources                              func() map[string]*source
	endpoints, up, updates, failures, at *prometheus.Desc
}

// watchSources registers the collector of discovery metrics; sources
// returns the serving snapshot's sources by service name.
func (m *Metrics) watchSources(sources func() map[string]*source) {
	l := []string{"service", "provider"}
	d := prometheus.NewDesc
	m.Registry.MustRegister(&sourceCollector{
		sources:   sources,
		endpoints: d("portico_discovery_endpoints", "Endpoints in the last set the provider delivered.", l, nil),
		up:        d("portico_discovery_up", "1 while the provider's last attempt succeeded; 0 while it fails and the last known set keeps serving.", l, nil),
		updates:   d("portico_discovery_updates_total", "Endpoint sets delivered by the provider.", l, nil),
		failures:  d("portico_discovery_failures_total", "Failed attempts of the provider to refresh the set.", l, nil),
		at:        d("portico_discovery_last_update_timestamp_seconds", "When the provider last delivered a set (Unix time).", l, nil),
	})
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.endpoints, c.up, c.updates, c.failures, c.at} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	for name, src := range c.sources() {
		src.mu.Lock()
		count, failing, last := src.count, src.err != nil, src.lastUpdate
		src.mu.Unlock()
		up := 1.0
		if failing {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(c.endpoints, prometheus.GaugeValue, float64(count), name, src.kind)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, name, src.kind)
		ch <- prometheus.MustNewConstMetric(c.updates, prometheus.CounterValue, float64(src.updates.Load()), name, src.kind)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(src.failures.Load()), name, src.kind)
		if !last.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.at, prometheus.GaugeValue, float64(last.UnixNano())/1e9, name, src.kind)
		}
	}
}

// sources returns the serving snapshot's discovery sources by service name.
func (s *Server) sources() map[string]*source {
	snap := s.snap.Load()
	if snap == nil {
		return nil
	}
	out := make(map[string]*source)
	for name, svc := range snap.services {
		if svc.source != nil {
			out[name] = svc.source
		}
	}
	return out
}
