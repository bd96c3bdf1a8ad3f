//go:build darwin || freebsd || netbsd || openbsd

package daemon

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// The proof that a pid is the daemon is the pid that answers on the
// control socket, as the kernel attests it. Linux attaches the sender's
// credentials to each message (SO_PASSCRED); the BSDs and macOS attest a
// connection's peer instead, read right after connecting, and each names a
// different process:
//
//   - FreeBSD 13 and later (LOCAL_PEERCRED, cr_pid): the process that last
//     called listen(2) on the control socket. The new daemon of an upgrade
//     calls it again (claimControl), so the proof follows it.
//   - NetBSD (LOCAL_PEEREID) and OpenBSD (SO_PEERCRED): the process that
//     bound the socket, for as long as it exists: after an upgrade that
//     would stay the old daemon, whose pid another process may reuse, so
//     upgrades are refused there (upgradeRefused).
//   - macOS (LOCAL_PEERPID): the process that last used the listening
//     socket (bind, listen, accept). During an upgrade both daemons accept
//     on it, so after one it could still name the old daemon for a while:
//     upgrades are refused there too.
//
// Where the kernel names no pid (FreeBSD before 13), nothing is proven,
// and stop, reload, reopen and upgrade refuse.

// peerPid returns the pid the kernel records for the peer of c, a
// connection to the control socket: the daemon's side.
func peerPid(c *net.UnixConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		pid  int
		perr error
	)
	if err := rc.Control(func(fd uintptr) { pid, perr = peerPidOf(int(fd)) }); err != nil {
		return 0, err
	}
	if perr != nil {
		return 0, fmt.Errorf("%s: the peer's pid: %w", peerCredName, perr)
	}
	if pid <= 0 {
		return 0, fmt.Errorf("%s names no pid for the daemon's side: %w", peerCredName, errNoPeerPid)
	}
	return pid, nil
}

// errNoPeerPid is why a pid cannot be proven where the kernel does not
// name the peer's process.
var errNoPeerPid = errors.New("this kernel does not tell which process answers on the control socket (FreeBSD does from 13 on)")

// senderPid is 0: no credentials come with the messages here.
func senderPid([]byte) int { return 0 }

// upgradeRefused says why zend upgrade cannot keep the proof on this
// system, or nil where it can.
func upgradeRefused() error {
	if upgradeKeepsProof {
		return nil
	}
	return fmt.Errorf("zend upgrade is not available on %s: the kernel's %s would go on naming the old daemon after the handover, so stop, reload and reopen could not prove the new one; use zend restart", runtime.GOOS, peerCredName)
}
