//go:build !darwin

package daemon

import "golang.org/x/sys/unix"

// tcpSocket opens a non-blocking, close-on-exec TCP socket of family.
func tcpSocket(family int) (int, error) {
	return socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
}
