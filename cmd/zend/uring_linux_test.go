package main_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompExec is the launcher: the filter is installed on this thread
// (locked), which then calls execve, so the new program starts under it.
func seccompExec() {
	runtime.LockOSThread()
	args := strings.Split(os.Getenv(seccompExecEnv), "\x1f")
	os.Unsetenv(seccompExecEnv)
	const (
		ldAbsW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeqK    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		retK    = unix.BPF_RET | unix.BPF_K
		nrOff   = 0 // struct seccomp_data: nr, then arch
		archOff = 4
	)
	arch := uint32(unix.AUDIT_ARCH_X86_64)
	if runtime.GOARCH == "arm64" {
		arch = unix.AUDIT_ARCH_AARCH64
	}
	prog := []unix.SockFilter{
		{Code: ldAbsW, K: archOff},
		{Code: jeqK, Jt: 1, Jf: 0, K: arch},
		{Code: retK, K: unix.SECCOMP_RET_ALLOW}, // another ABI: not ours to judge
		{Code: ldAbsW, K: nrOff},
		{Code: jeqK, Jt: 0, Jf: 1, K: unix.SYS_IO_URING_SETUP},
		{Code: retK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: retK, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "no_new_privs:", err)
		os.Exit(111)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		fmt.Fprintln(os.Stderr, "seccomp:", e)
		os.Exit(111)
	}
	err := syscall.Exec(args[0], args, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(111)
}

// TestURingFallsBack: under a seccomp filter that refuses io_uring, the
// uring engine falls back to eventloop and auto picks eventloop, each
// saying why in one log line, and both serve.
func TestURingFallsBack(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		engine string
		line   string // the log line that says what happened
	}{
		// Asked for: a warning, and eventloop.
		{"uring", `level=WARN msg="io_uring unavailable, engine uring falls back to eventloop" err="io_uring unavailable: io_uring_setup: operation not permitted"`},
		// The default: auto says what it chose and why.
		{"auto", `level=INFO msg="engine auto: eventloop, io_uring unavailable" engine=eventloop err="io_uring unavailable: io_uring_setup: operation not permitted"`},
	} {
		t.Run(tt.engine, func(t *testing.T) {
			addr := freeAddr(t)
			p := start(t, self, []string{seccompExecEnv + "=" + strings.Join([]string{bin + "/zend", "-listen", addr, "-engine", tt.engine, "run"}, "\x1f")})
			p.waitLog(t, `msg=listening addr=\S+ engine=eventloop`)
			if !strings.Contains(p.log(), tt.line) {
				t.Fatalf("log lacks %s:\n%s", tt.line, p.log())
			}
			client(t, addr)
			// Without the filter, the same engine is uring.
			addr2 := freeAddr(t)
			q := start(t, "zend", nil, "-listen", addr2, "-engine", tt.engine, "run")
			q.waitLog(t, `msg=listening addr=\S+ engine=uring`)
			client(t, addr2)
		})
	}
}
