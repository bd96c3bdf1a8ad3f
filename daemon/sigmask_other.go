//go:build darwin || openbsd

package daemon

// clearSignalMask leaves the signal mask as it is: Go reaches the kernel
// through libc on macOS (whose system call numbers are no interface) and
// OpenBSD (which admits system calls only from libc), and neither its
// syscall package nor x/sys/unix offers pthread_sigmask there. A signal
// that zend's caller blocked stays blocked in the processes it starts;
// Go still receives the signals it is asked for (signal.Notify unblocks
// them on a thread of its own).
func clearSignalMask() error { return nil }
