//go:build !linux

package daemon

import "golang.org/x/sys/unix"

// fdsWithoutProc lists the open descriptors where there is no
// /proc/self/fd (and /dev/fd lists only 0, 1 and 2 on the BSDs unless
// fdescfs is mounted): each descriptor below the soft RLIMIT_NOFILE, and
// below 65536, is asked with fcntl(F_GETFD).
func fdsWithoutProc() []int {
	limit := 1024
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur > 0 {
		limit = int(min(uint64(rl.Cur), 1<<16))
	}
	var fds []int
	for fd := 0; fd < limit; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds
}
