package proxy

import (
	"syscall"
	"unsafe"
)

// probeResult is what the last probe of an idle connection saw.
type probeResult struct {
	n     uintptr
	errno syscall.Errno
	buf   [1]byte
}

func (c *h1Conn) initProbe() {
	if sc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.probeFn = c.peek
		}
	}
}

// peek asks the socket, without blocking or consuming anything, whether
// the endpoint sent data or closed the connection.
func (c *h1Conn) peek(fd uintptr) bool {
	r := &c.probeRes
	r.n, _, r.errno = syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return true
}

// probe reports whether an idle connection is open with nothing to read:
// a read would block. Zero bytes is the endpoint's close; data is an answer
// nobody asked for; either way the connection is not reused.
func (c *h1Conn) probe() bool {
	if c.raw == nil {
		return true
	}
	if err := c.raw.Read(c.probeFn); err != nil {
		return false
	}
	return c.probeRes.errno == syscall.EAGAIN
}
