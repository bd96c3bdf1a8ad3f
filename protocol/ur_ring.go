//go:build linux

package protocol

// The uring engine's ring: one io_uring per loop, with a ring of
// provided buffers for the receives, and what the loop asks of
// it (an entry, a submission with the wait, the completions ready), on
// the small binding of ur_sys.go.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	urEntries = 1024 // submission queue entries per loop (the completion queue is twice that)
	urBufSize = 2048 // one provided buffer: a receive takes at most this much
	urBufs    = 128  // provided buffers per loop, a power of two (256 KiB, touched as data arrives)
	urGroup   = 0    // the buffer group of the receives
)

// The operations a completion belongs to, in the top byte of its
// user_data; the rest is the connection's slot and generation, or the
// listener's descriptor.
const (
	urWake       uint8 = iota + 1 // the multishot poll of the loop's eventfd
	urAccept                      // a listener's accept
	urRecv                        // a connection's receive
	urSend                        // a connection's send
	urCancel                      // a cancellation (its result is ignored)
	urAcceptPoll                  // a listener's readiness, awaited for its next accept
)

// urData packs an operation, a slot and a generation into a user_data.
func urData(op uint8, slot, gen uint32) uint64 {
	return uint64(op)<<56 | uint64(gen&0xffffff)<<32 | uint64(slot)
}

// urUnpack is urData's inverse.
func urUnpack(d uint64) (op uint8, slot, gen uint32) {
	return uint8(d >> 56), uint32(d), uint32(d>>32) & 0xffffff
}

// ErrNoURing wraps the reasons io_uring cannot serve here: an old kernel,
// kernel.io_uring_disabled, or a seccomp filter that refuses it.
var ErrNoURing = errors.New("io_uring unavailable")

// urKernelOK reports whether the kernel has what the engine uses:
// provided buffer rings and the extended wait (Linux 6.0 is asked, as
// the release tested first).
func urKernelOK() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	rel := unix.ByteSliceToString(u.Release[:])
	f := strings.FieldsFunc(rel, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return fmt.Errorf("kernel release %q unreadable", rel)
	}
	if major, _ := strconv.Atoi(f[0]); major < 6 {
		return fmt.Errorf("kernel %s: the uring engine needs Linux 6.0", rel)
	}
	return nil
}

// urRing is a loop's ring and its provided buffers.
type urRing struct {
	ring *iouring
	br   *bufRing
}

// newURing sets up a ring and its buffer ring. Its error wraps
// ErrNoURing when io_uring is refused or missing.
func newURing() (*urRing, error) {
	if err := urKernelOK(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoURing, err)
	}
	if one := uint16(1); *(*byte)(unsafe.Pointer(&one)) == 0 {
		// bufRing.publish writes the ring's tail as the low half of a
		// little-endian word.
		return nil, fmt.Errorf("%w: the binding is written for little-endian machines", ErrNoURing)
	}
	ring, err := newIOURing(urEntries, iorSetupCoopTaskrun)
	if errors.Is(err, syscall.EINVAL) { // before Linux 5.19
		ring, err = newIOURing(urEntries, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrNoURing, err)
	}
	br, err := ring.newBufRing(urGroup, urBufs, urBufSize)
	if err != nil {
		ring.close()
		return nil, fmt.Errorf("%w: provided buffer ring: %v", ErrNoURing, err)
	}
	return &urRing{ring: ring, br: br}, nil
}

// urProbe reports whether the uring engine can run here: nil, or an
// error wrapping ErrNoURing that says why not. It sets up a ring and its
// buffers and runs a no-op through io_uring_enter: a seccomp filter may
// refuse any of the three system calls.
func urProbe() error {
	r, err := newURing()
	if err != nil {
		return err
	}
	defer r.close()
	e := r.sqe()
	e.opcode = iorOpNop
	e.userData = 1
	for {
		err = r.ring.submitAndWait(int64(time.Second))
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%w: io_uring_enter: %v", ErrNoURing, err)
	}
	done := false
	r.ring.completions(func(d uint64, _ int32, _ uint32) { done = done || d == 1 })
	if !done {
		return fmt.Errorf("%w: io_uring_enter: a no-op did not complete", ErrNoURing)
	}
	return nil
}

// close releases the ring and the buffers.
func (r *urRing) close() {
	r.br.free(r.ring, urGroup)
	r.ring.close()
}

// buf returns buffer bid's first n bytes.
func (r *urRing) buf(bid uint16, n int) []byte { return r.br.buf(bid, n) }

// recycle gives buffer bid back to the kernel.
func (r *urRing) recycle(bid uint16) {
	r.br.add(bid)
	r.br.publish()
}

// sqe returns a free submission entry, submitting what is queued when the
// queue is full.
func (r *urRing) sqe() *iorSQE {
	for {
		if e := r.ring.getSQE(); e != nil {
			return e
		}
		r.ring.submit()
	}
}

// cancel queues the cancellation of the request of user_data d.
func (r *urRing) cancel(d uint64) {
	e := r.sqe()
	e.opcode = iorOpAsyncCancel
	e.fd = -1
	e.addr = d
	e.userData = urData(urCancel, 0, 0)
}

// Completion flags.
const (
	urMore     = iorCQEFMore   // a multishot request goes on
	urBuffer   = iorCQEFBuffer // a provided buffer holds the data
	urBufShift = iorCQEBufferShift
)
