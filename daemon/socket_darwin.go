package daemon

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpSocket opens a non-blocking, close-on-exec TCP socket of family.
// macOS has no SOCK_NONBLOCK or SOCK_CLOEXEC: the flags are set after,
// under ForkLock as Go's net package does, so no fork inherits the socket
// in between.
func tcpSocket(family int) (int, error) {
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(family, unix.SOCK_STREAM, unix.IPPROTO_TCP)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
