package daemon

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCredName names the kernel's record of a peer that peerPidOf reads.
const peerCredName = "LOCAL_PEEREID"

// upgradeKeepsProof is false: see cred_bsd.go.
const upgradeKeepsProof = false

// unpcbid is NetBSD's struct unpcbid, the answer to LOCAL_PEEREID
// (<sys/un.h>; x/sys/unix names neither).
type unpcbid struct {
	pid  int32
	euid uint32
	egid uint32
}

// peerPidOf returns the pid recorded for the peer of fd: for a client's
// connection, the process that bound the server's socket.
func peerPidOf(fd int) (int, error) {
	const solLocal, localPeereid = 0, 3
	var id unpcbid
	n := uint32(unsafe.Sizeof(id))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), solLocal, localPeereid,
		uintptr(unsafe.Pointer(&id)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, e
	}
	return int(id.pid), nil
}

// claimControl has nothing to do: upgrades are refused.
func claimControl(*net.UnixListener) error { return nil }
