package gateway

import "testing"

// TestRequestsInFlightGauge checks that portico_requests_in_flight, read at
// scrape time from a counter the request path updates, reports it.
func TestRequestsInFlightGauge(t *testing.T) {
	m := NewMetrics()
	read := func() float64 {
		t.Helper()
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "portico_requests_in_flight" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("portico_requests_in_flight is not exported")
		return 0
	}
	if v := read(); v != 0 {
		t.Fatalf("in flight at start = %v, want 0", v)
	}
	m.inFlight.Add(1)
	m.inFlight.Add(1)
	m.inFlight.Add(-1)
	if v := read(); v != 1 {
		t.Fatalf("in flight = %v, want 1", v)
	}
}
