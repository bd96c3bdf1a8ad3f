package protocol

import "sync"

// bufPool holds the buffers conversations borrow while they have bytes in
// flight: a read, a question cut across reads, answers not yet written.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, readSize); return &b }}

// getBuf borrows an empty buffer.
func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

// putBuf gives b back; small and oversized buffers are left to the GC.
func putBuf(b []byte) {
	if cap(b) >= 512 && cap(b) <= 64<<10 {
		b = b[:0]
		bufPool.Put(&b)
	}
}
