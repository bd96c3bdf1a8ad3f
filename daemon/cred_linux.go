package daemon

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerPid readies c, a connection to the control socket, to learn the pid
// of the process that answers: on Linux the kernel attaches the sender's
// credentials to each message (senderPid), so it returns 0 here.
func peerPid(c *net.UnixConn) (int, error) { return 0, passCred(c) }

// claimControl has nothing to do on Linux: the credentials come from the
// process that sends, whoever created the socket (see cred_bsd.go).
func claimControl(*net.UnixListener) error { return nil }

// upgradeRefused is nil: after an upgrade the proof names the new daemon.
func upgradeRefused() error { return nil }

// passCred asks the kernel to attach the sender's credentials to what c
// receives.
func passCred(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// senderPid returns the pid in the SCM_CREDENTIALS of oob, 0 if none.
func senderPid(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}
