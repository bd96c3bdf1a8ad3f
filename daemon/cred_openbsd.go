package daemon

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// peerCredName names the kernel's record of a peer that peerPidOf reads.
const peerCredName = "SO_PEERCRED"

// upgradeKeepsProof is false: see cred_bsd.go.
const upgradeKeepsProof = false

// peerPidOf returns the pid recorded for the peer of fd: for a client's
// connection, the process that bound the server's socket. OpenBSD admits
// system calls only through libc, and x/sys/unix has no getsockopt for
// struct sockpeercred { uid_t uid; gid_t gid; pid_t pid; }: its 12 bytes
// are read through the 20-byte buffer of GetsockoptIPv6Mreq (the kernel
// copies no more than it has).
func peerPidOf(fd int) (int, error) {
	m, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, err
	}
	return int(int32(binary.NativeEndian.Uint32(m.Multiaddr[8:12]))), nil
}

// claimControl has nothing to do: upgrades are refused.
func claimControl(*net.UnixListener) error { return nil }
