package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockPrivileges sets PR_SET_NO_NEW_PRIVS and empties the capability
// bounding set on every thread of the process (as Go's Setuid does, with
// AllThreadsSyscall), so that nothing the daemon runs later (an upgrade's
// exec) can gain privileges, whatever file capabilities or set-user-ID
// bits it meets. A binary built with cgo cannot change every thread: it
// returns a note saying so, and execNoNewPrivs covers the one exec zend
// does. Under systemd, NoNewPrivileges= and CapabilityBoundingSet= have
// done the same already.
func lockPrivileges() (note string, err error) {
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		if errors.Is(e, syscall.ENOTSUP) {
			return "built with cgo: no_new_privs is set on the thread that starts an upgrade, and the capability bounding set is left to the service manager (build with CGO_ENABLED=0 for both on every thread)", nil
		}
		return "", fmt.Errorf("PR_SET_NO_NEW_PRIVS: %w", e)
	}
	for c := 0; c <= lastCap(); c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil || in == 0 {
			continue
		}
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 {
			if errors.Is(e, syscall.EPERM) {
				// No CAP_SETPCAP: a service manager's bounding set
				// without it. no_new_privs is set all the same.
				return "no CAP_SETPCAP to empty the capability bounding set: it stays as the service manager set it", nil
			}
			return "", fmt.Errorf("empty the capability bounding set (capability %d): %w", c, e)
		}
	}
	return "", nil
}

// execNoNewPrivs sets PR_SET_NO_NEW_PRIVS on the calling thread, which the
// caller has locked and from which it is about to fork and exec.
func execNoNewPrivs() error {
	return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
}

// lastCap returns the highest capability the kernel knows.
func lastCap() int {
	var n int
	if _, err := fmt.Sscan(readFirstLine("/proc/sys/kernel/cap_last_cap"), &n); err != nil || n < 1 {
		return 63
	}
	return n
}

// readFirstLine returns the first line of a small file, "" on error.
func readFirstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// undumpable makes the process non-dumpable: no other process of the same
// user can ptrace it, read its memory or take its descriptors
// (pidfd_getfd), and its /proc entries are root's. The kernel does this on
// a change of user; a daemon that starts as its user already (the new
// daemon of an upgrade, User= in a unit) does it here.
func undumpable() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
