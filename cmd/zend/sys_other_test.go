//go:build !linux

package main_test

import (
	"errors"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The Linux-only helpers of sys_linux_test.go: the tests that need them
// are skipped, or fail saying why.

func openPty(t *testing.T) (master, slave *os.File) {
	t.Skip("openPty: pseudo-terminals are opened the Linux way here")
	return nil, nil
}

func blockAndIgnore(t *testing.T, f func()) {
	t.Skip("blockAndIgnore: x/sys/unix has pthread_sigmask on Linux only")
}

func prlimitNoFile(pid int, lim, old *unix.Rlimit) error {
	return errors.ErrUnsupported // prlimit(2) is Linux's
}

// synRetransmitted: TCP_INFO's retransmission count is read the Linux way
// here; elsewhere no SYN is seen retransmitted.
func synRetransmitted(c net.Conn) bool { return false }

// seccompExec: seccomp is Linux's; nothing sets seccompExecEnv elsewhere.
func seccompExec() {}
