//go:build !linux

package h1server

// peerClosed reports whether the client closed the connection; only Linux
// can tell without reading, elsewhere the watcher (Done) does.
func (c *conn) peerClosed() bool { return false }
