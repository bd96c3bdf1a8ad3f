//go:build linux

package protocol

// A small io_uring binding on golang.org/x/sys/unix: the three system
// calls, the rings' shared memory, submission and completion entries,
// and a provided buffer ring. Only what the uring engine uses; the
// layouts are <linux/io_uring.h>'s.

import (
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes, flags and offsets of <linux/io_uring.h>.
const (
	iorOpNop         = 0
	iorOpPollAdd     = 6
	iorOpAccept      = 13
	iorOpAsyncCancel = 14
	iorOpSend        = 26
	iorOpRecv        = 27

	iosqeBufferSelect = 1 << 5

	iorRecvMultishot = 1 << 1 // in ioprio
	iorPollAddMulti  = 1 << 0 // in len

	iorCQEFBuffer     = 1 << 0
	iorCQEFMore       = 1 << 1
	iorCQEBufferShift = 16

	iorSetupCoopTaskrun = 1 << 8

	iorFeatSingleMmap = 1 << 0
	iorFeatExtArg     = 1 << 8

	iorEnterGetEvents = 1 << 0
	iorEnterExtArg    = 1 << 3

	iorRegisterPbufRing   = 22
	iorUnregisterPbufRing = 23

	iorOffSQRing = 0
	iorOffCQRing = 0x8000000
	iorOffSQEs   = 0x10000000
)

// iorParams is struct io_uring_params.
type iorParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// iorSQE is struct io_uring_sqe.
type iorSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufGroup    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	_           uint64
}

// iorCQE is struct io_uring_cqe.
type iorCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// iorBuf is struct io_uring_buf: one entry of a provided buffer ring;
// the ring's tail is the first entry's last 16 bits.
type iorBuf struct {
	addr uint64
	len  uint32
	bid  uint16
	tail uint16
}

// iorBufReg is struct io_uring_buf_reg.
type iorBufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// iorGeteventsArg is struct io_uring_getevents_arg.
type iorGeteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

// iouring is one ring: its descriptor and its shared memory.
type iouring struct {
	fd               int
	sqMem, cqMem     []byte
	sqeMem           []byte
	sqHead, sqTail   *uint32
	sqMask           uint32
	sqEntries        uint32
	sqArray          unsafe.Pointer
	sqes             unsafe.Pointer
	sqeHead, sqeTail uint32 // what is prepared: [sqeHead, sqeTail) not yet submitted
	cqHead, cqTail   *uint32
	cqMask           uint32
	cqes             unsafe.Pointer
	// The wait's argument and timeout, on the heap: the kernel reads
	// them through addresses that a goroutine stack could move.
	arg iorGeteventsArg
	ts  unix.Timespec
}

// newIOURing sets up a ring of entries submissions with setup flags.
func newIOURing(entries uint32, flags uint32) (*iouring, error) {
	var p iorParams
	p.flags = flags
	fd, _, e := syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, e
	}
	r := &iouring{fd: int(fd)}
	if p.features&iorFeatSingleMmap == 0 || p.features&iorFeatExtArg == 0 {
		unix.Close(r.fd)
		return nil, syscall.ENOSYS // before Linux 5.11
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(iorCQE{})))
	size := max(sqSize, cqSize)
	mem, err := unix.Mmap(r.fd, iorOffSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(r.fd)
		return nil, err
	}
	r.sqMem, r.cqMem = mem, mem // one mapping for both (IORING_FEAT_SINGLE_MMAP)
	sqes, err := unix.Mmap(r.fd, iorOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(iorSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(mem)
		unix.Close(r.fd)
		return nil, err
	}
	r.sqeMem = sqes
	base := unsafe.Pointer(&mem[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(base, p.sqOff.ringEntries))
	r.sqArray = unsafe.Add(base, p.sqOff.array)
	r.sqes = unsafe.Pointer(&sqes[0])
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Add(base, p.cqOff.cqes)
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.sqeHead = r.sqeTail
	return r, nil
}

// close unmaps the rings and closes the descriptor.
func (r *iouring) close() {
	unix.Munmap(r.sqeMem)
	unix.Munmap(r.sqMem)
	unix.Close(r.fd)
}

// getSQE returns a zeroed submission entry, or nil when the queue is
// full.
func (r *iouring) getSQE() *iorSQE {
	if r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return nil
	}
	i := r.sqeTail & r.sqMask
	e := (*iorSQE)(unsafe.Add(r.sqes, uintptr(i)*unsafe.Sizeof(iorSQE{})))
	*e = iorSQE{}
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(i)*4)) = i
	r.sqeTail++
	return e
}

// flush publishes the prepared entries to the kernel and returns how
// many there are.
func (r *iouring) flush() uint32 {
	n := r.sqeTail - r.sqeHead
	if n > 0 {
		atomic.StoreUint32(r.sqTail, r.sqeTail)
		r.sqeHead = r.sqeTail
	}
	return n
}

// submit submits the prepared entries without waiting.
func (r *iouring) submit() error {
	n := r.flush()
	if n == 0 {
		return nil
	}
	_, _, e := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 0, 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// submitAndWait submits the prepared entries and waits for a completion,
// at most timeoutNs nanoseconds (forever when negative), in one system
// call. It returns syscall.ETIME when the time ran out.
func (r *iouring) submitAndWait(timeoutNs int64) error {
	n := r.flush()
	r.arg = iorGeteventsArg{}
	if timeoutNs >= 0 {
		r.ts = unix.NsecToTimespec(timeoutNs)
		r.arg.ts = uint64(uintptr(unsafe.Pointer(&r.ts)))
	}
	_, _, e := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 1,
		iorEnterGetEvents|iorEnterExtArg, uintptr(unsafe.Pointer(&r.arg)), unsafe.Sizeof(r.arg))
	if e != 0 {
		return e
	}
	return nil
}

// completions calls f for each completion ready, then marks them seen.
func (r *iouring) completions(f func(userData uint64, res int32, flags uint32)) {
	head := *r.cqHead
	for {
		tail := atomic.LoadUint32(r.cqTail)
		if head == tail {
			break
		}
		for ; head != tail; head++ {
			c := (*iorCQE)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*unsafe.Sizeof(iorCQE{})))
			f(c.userData, c.res, c.flags)
		}
		atomic.StoreUint32(r.cqHead, head)
	}
}

// register calls io_uring_register.
func (r *iouring) register(op uintptr, arg unsafe.Pointer, n uintptr) error {
	_, _, e := syscall.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), n, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// bufRing is a provided buffer ring of n entries (a power of two) over
// bufs, n buffers of size bytes.
type bufRing struct {
	mem  []byte // the entries, shared with the kernel
	bufs []byte
	size int
	mask uint16
	tail uint16
}

// newBufRing registers a provided buffer ring of group bgid with n
// buffers of size bytes, all given to the kernel.
func (r *iouring) newBufRing(bgid uint16, n, size int) (*bufRing, error) {
	mem, err := unix.Mmap(-1, 0, n*int(unsafe.Sizeof(iorBuf{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	bufs, err := unix.Mmap(-1, 0, n*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	reg := iorBufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: uint32(n), bgid: bgid}
	if err := r.register(iorRegisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		unix.Munmap(bufs)
		unix.Munmap(mem)
		return nil, err
	}
	b := &bufRing{mem: mem, bufs: bufs, size: size, mask: uint16(n - 1)}
	for i := 0; i < n; i++ {
		b.add(uint16(i))
	}
	b.publish()
	return b, nil
}

// add queues buffer bid for the kernel; publish hands it over.
func (b *bufRing) add(bid uint16) {
	e := (*iorBuf)(unsafe.Add(unsafe.Pointer(&b.mem[0]), uintptr(b.tail&b.mask)*unsafe.Sizeof(iorBuf{})))
	e.addr = uint64(uintptr(unsafe.Pointer(&b.bufs[int(bid)*b.size])))
	e.len = uint32(b.size)
	e.bid = bid
	b.tail++
}

// publish stores the ring's tail (the first entry's last 16 bits) with
// release order, after the entries it covers.
func (b *bufRing) publish() {
	first := (*iorBuf)(unsafe.Pointer(&b.mem[0]))
	word := (*uint32)(unsafe.Pointer(&first.bid))
	atomic.StoreUint32(word, uint32(b.tail)<<16|uint32(atomic.LoadUint32(word)&0xffff))
}

// buf returns buffer bid's first n bytes.
func (b *bufRing) buf(bid uint16, n int) []byte {
	off := int(bid) * b.size
	return b.bufs[off : off+n]
}

// free unregisters the ring and unmaps it.
func (b *bufRing) free(r *iouring, bgid uint16) {
	reg := iorBufReg{bgid: bgid}
	r.register(iorUnregisterPbufRing, unsafe.Pointer(&reg), 1)
	unix.Munmap(b.bufs)
	unix.Munmap(b.mem)
}
