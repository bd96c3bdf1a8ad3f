package daemon

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// pidfdOpen returns a pidfd for pid: a descriptor that names that process
// and no other, even once its pid is reused.
func pidfdOpen(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// pidfdSendSignal sends sig to the process of pidfd.
func pidfdSendSignal(pidfd int, sig syscall.Signal) error {
	return unix.PidfdSendSignal(pidfd, sig, nil, 0)
}
