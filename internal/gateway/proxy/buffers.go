package proxy

import (
	"net/http/httputil"
	"sync"
)

// bufferSize is the size of the buffers response bodies are copied through.
const bufferSize = 32 << 10

// bufferPool is the httputil.BufferPool shared by every route of a Proxy. It
// pools array pointers, so neither Get nor Put allocates.
type bufferPool struct{ p sync.Pool }

var _ httputil.BufferPool = (*bufferPool)(nil)

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[bufferSize]byte); ok {
		return buf[:]
	}
	return new([bufferSize]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < bufferSize {
		return
	}
	b.p.Put((*[bufferSize]byte)(buf[:bufferSize]))
}
