//go:build !linux

package daemon

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Process descriptors are Linux's (FreeBSD's pdfork names only children).
// Without them a proven daemon is signalled by pid (kill(2)), waited for
// with kill(pid, 0), and the exit of an upgrade's old daemon is seen by
// the parent pid changing: the proof on the control socket comes just
// before the signal, but a pid that exits and is reused in between cannot
// be told apart.

// pidfdOpen fails with ENOSYS: callers fall back to the pid.
func pidfdOpen(int) (int, error) { return -1, unix.ENOSYS }

// pidfdSendSignal fails with ENOSYS: callers fall back to kill(2).
func pidfdSendSignal(int, syscall.Signal) error { return unix.ENOSYS }
