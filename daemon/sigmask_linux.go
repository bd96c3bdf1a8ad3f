package daemon

import "golang.org/x/sys/unix"

// clearSignalMask empties the calling thread's signal mask.
func clearSignalMask() error {
	var empty unix.Sigset_t
	return unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
}
