package protocol

import "sync"

// bufPool holds the buffers conversations borrow while they have bytes in
// flight: a read, a question cut across reads.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, readSize); return &b }}

// getBuf borrows an empty buffer.
func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

// putBuf gives b back; small and oversized buffers are left to the GC.
func putBuf(b []byte) {
	if cap(b) >= 512 && cap(b) <= 64<<10 && cap(b) < outCap {
		b = b[:0]
		bufPool.Put(&b)
	} else if cap(b) >= outCap && cap(b) <= 2*outCap {
		putOut(b)
	}
}

// outCap is the size of an output buffer: a batch of answers and the one
// that crosses it, so that it never grows (and leaves no garbage behind)
// while a conversation answers.
const outCap = batchOut + 1024

// outPool holds output buffers; only a conversation with answers not yet
// taken holds one.
var outPool = sync.Pool{New: func() any { b := make([]byte, 0, outCap); return &b }}

// getOut borrows an empty output buffer.
func getOut() []byte { return (*outPool.Get().(*[]byte))[:0] }

// putOut gives an output buffer back.
func putOut(b []byte) {
	b = b[:0]
	outPool.Put(&b)
}
