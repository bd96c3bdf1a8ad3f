package daemon

import (
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCredName names the kernel's record of a peer that peerPidOf reads.
const peerCredName = "LOCAL_PEERCRED"

// upgradeKeepsProof is true: the new daemon claims the socket (listen).
const upgradeKeepsProof = true

// xucred is FreeBSD's struct xucred. x/sys/unix hides its last member, a
// union of a pointer and cr_pid (FreeBSD 13 and later; 0 before), behind
// a blank *byte field; here it is a uintptr, so it has the union's size and
// alignment and the garbage collector never takes a pid for a pointer.
type xucred struct {
	version uint32
	uid     uint32
	ngroups int16
	groups  [16]uint32
	pid     uintptr // pid_t cr_pid at its start
}

// peerPidOf returns the pid recorded for the peer of fd: for a client's
// connection, the process that last called listen(2) on the server's
// socket.
func peerPidOf(fd int) (int, error) {
	var x xucred
	n := uint32(unsafe.Sizeof(x))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED,
		uintptr(unsafe.Pointer(&x)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, e
	}
	if x.version != 0 || uintptr(n) != unsafe.Sizeof(x) { // XUCRED_VERSION
		return 0, errors.New("unknown struct xucred")
	}
	return int(*(*int32)(unsafe.Pointer(&x.pid))), nil
}

// claimControl makes this process the one the kernel names for the
// control socket a running daemon handed it: listen(2) again records the
// caller's credentials, pid included.
func claimControl(ln *net.UnixListener) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), -1) }); err != nil {
		return err
	}
	return lerr
}
