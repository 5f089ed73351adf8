//go:build !linux

package proxy

// probeResult is empty where idle connections are not probed.
type probeResult struct{}

func (c *h1Conn) initProbe() {}

// probe cannot see a close by the endpoint on this platform; a stale
// connection is caught by the retry in RoundTrip instead.
func (c *h1Conn) probe() bool { return true }
