package daemon

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCredName names the kernel's record of a peer that peerPidOf reads.
const peerCredName = "LOCAL_PEERPID"

// upgradeKeepsProof is false: see cred_bsd.go.
const upgradeKeepsProof = false

// peerPidOf returns the pid of the process that last used the peer socket
// of fd.
func peerPidOf(fd int) (int, error) {
	return unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID)
}

// claimControl has nothing to do: upgrades are refused.
func claimControl(*net.UnixListener) error { return nil }
