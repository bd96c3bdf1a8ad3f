package main_test

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompExec is the launcher: ZENDTEST_SECCOMP_EXEC holds a system call
// number and the command, separated by \x1f; the filter refusing that call
// with EPERM is installed on this thread (locked), which then calls
// execve, so the new program starts under it.
func seccompExec() {
	runtime.LockOSThread()
	args := strings.Split(os.Getenv(seccompExecEnv), "\x1f")
	os.Unsetenv(seccompExecEnv)
	// The system call refused: the first argument, a number.
	nr, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "seccomp launcher: want a system call number first:", err)
		os.Exit(111)
	}
	args = args[1:]
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
		{Code: jeqK, Jt: 0, Jf: 1, K: uint32(nr)},
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
	err = syscall.Exec(args[0], args, os.Environ())
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
		deny   int    // the system call refused
		line   string // the log line that says what happened
	}{
		// Asked for: a warning, and eventloop.
		{"uring", unix.SYS_IO_URING_SETUP, `level=WARN msg="io_uring unavailable, engine uring falls back to eventloop" err="io_uring unavailable: io_uring_setup: operation not permitted"`},
		// The default: auto says what it chose and why.
		{"auto", unix.SYS_IO_URING_SETUP, `level=INFO msg="engine auto: eventloop, io_uring unavailable" engine=eventloop err="io_uring unavailable: io_uring_setup: operation not permitted"`},
		// Setup allowed, io_uring_enter refused: the probe runs a no-op
		// through it. (Seen: uring chosen, then "io_uring_enter failed"
		// 200 times a second, and a stop that never ended.)
		{"auto", unix.SYS_IO_URING_ENTER, `level=INFO msg="engine auto: eventloop, io_uring unavailable" engine=eventloop err="io_uring unavailable: io_uring_enter: operation not permitted"`},
		// Setup and enter allowed, register refused: the buffer ring.
		{"uring", unix.SYS_IO_URING_REGISTER, `level=WARN msg="io_uring unavailable, engine uring falls back to eventloop" err="io_uring unavailable: provided buffer ring: operation not permitted"`},
	} {
		t.Run(fmt.Sprintf("%s/deny-%d", tt.engine, tt.deny), func(t *testing.T) {
			addr := freeAddr(t)
			p := start(t, self, []string{seccompExecEnv + "=" + strings.Join([]string{strconv.Itoa(tt.deny), bin + "/zend", "-listen", addr, "-engine", tt.engine, "run"}, "\x1f")})
			p.waitLog(t, `msg=listening addr=\S+ engine=eventloop`)
			if !strings.Contains(p.log(), tt.line) {
				t.Fatalf("log lacks %s:\n%s", tt.line, p.log())
			}
			client(t, addr)
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t, 20*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM:\n%s", code, p.log())
			}
			// Without the filter, the same engine is uring.
			addr2 := freeAddr(t)
			q := start(t, "zend", nil, "-listen", addr2, "-engine", tt.engine, "run")
			q.waitLog(t, `msg=listening addr=\S+ engine=uring`)
			client(t, addr2)
		})
	}
}

// TestURingDisabledForUsers: with kernel.io_uring_disabled = 1 only root
// may use io_uring, and a daemon started as root serves as daemon.user:
// the engine is chosen after the privilege drop, so it falls back to
// eventloop and serves. (Seen: the probe ran as root and passed, the
// rings failed after the drop, "listener failed", and zend start had
// already said it started.)
func TestURingDisabledForUsers(t *testing.T) {
	needSystem(t, "kernel.io_uring_disabled = 1 for the length of the test, zend started as root with daemon.user")
	needRoot(t)
	const knob = "/proc/sys/kernel/io_uring_disabled"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Fatalf("%s: %v", knob, err)
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		t.Fatalf("%s: %v", knob, err)
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0o644) })
	cfg := writeFile(t, t.TempDir(), "zend.toml", "[daemon]\nuser = \"nobody\"\n")
	addr := freeAddr(t)
	p := start(t, "zend", nil, "-c", cfg, "-listen", addr, "run")
	p.waitLog(t, `msg=listening addr=\S+ engine=eventloop`)
	if !regexp.MustCompile(`msg="engine auto: eventloop, io_uring unavailable" engine=eventloop err="io_uring unavailable: io_uring_setup: operation not permitted"`).MatchString(p.log()) {
		t.Fatalf("no fallback line:\n%s", p.log())
	}
	if regexp.MustCompile(`engine auto: uring|listener failed`).MatchString(p.log()) {
		t.Fatalf("uring chosen as root, before the drop:\n%s", p.log())
	}
	client(t, addr)
	if uid := procStatus(t, p.cmd.Process.Pid, "Uid"); strings.Fields(uid)[0] != "65534" {
		t.Errorf("serving as uid %s, want nobody", uid)
	}
}
