//go:build freebsd || netbsd

package daemon

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// clearSignalMask empties the calling thread's signal mask with the
// system call Go's runtime uses for it (sigprocmask is per thread on
// FreeBSD and NetBSD): x/sys/unix has no wrapper for it there.
func clearSignalMask() error {
	const sigSetmask = 3 // SIG_SETMASK
	var empty [4]uint32  // sigset_t
	if _, _, e := unix.RawSyscall(sysSigprocmask, sigSetmask, uintptr(unsafe.Pointer(&empty)), 0); e != 0 {
		return e
	}
	return nil
}
