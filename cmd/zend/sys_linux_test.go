package main_test

// The tests' Linux-only system calls: pseudo-terminals by /dev/ptmx and
// /dev/pts, a thread's signal mask, another process's rlimit (prlimit).
// sys_other_test.go skips the tests that need them elsewhere.

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPty returns a new pseudo-terminal's master and slave.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// blockAndIgnore runs f (which starts a child) with SIGHUP ignored and
// SIGHUP and SIGUSR1 blocked on the calling thread, as a careless caller
// (nohup, a shell) would hand them down.
func blockAndIgnore(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A locked thread that is thrown away after: the mask and the
		// ignored disposition are inherited by the fork/exec it runs.
		runtimeLockOSThread()
		var set, old unix.Sigset_t
		set.Val[0] = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGUSR1-1)
		unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old)
		signalIgnore(syscall.SIGHUP)
		f()
		signalReset(syscall.SIGHUP)
		unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	}()
	<-done
}

// prlimitNoFile sets pid's RLIMIT_NOFILE to lim (when not nil) and returns
// the old one in old (when not nil).
func prlimitNoFile(pid int, lim, old *unix.Rlimit) error {
	return unix.Prlimit(pid, unix.RLIMIT_NOFILE, lim, old)
}

// synRetransmitted reports whether the kernel sent c's SYN more than once
// (nothing else was sent on c yet): the listener dropped the first.
func synRetransmitted(c net.Conn) bool {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return false
	}
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) { info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	return info != nil && info.Total_retrans > 0
}
