package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// syscallCount counts a server's system calls over a run: with perf
// (raw_syscalls:sys_enter, every call; needs tracefs mounted) when it
// works, else from /proc/PID/io's syscr and syscw, which count only
// read- and write-like calls (not epoll_wait, accept or io_uring_enter).
type syscallCount struct {
	pid  int
	perf *exec.Cmd
	out  bytes.Buffer
	io0  uint64
}

// startSyscallCount begins counting pid's system calls (nil for pid 0).
func startSyscallCount(pid int) *syscallCount {
	if pid <= 0 {
		return nil
	}
	c := &syscallCount{pid: pid}
	if p, err := exec.LookPath("perf"); err == nil {
		cmd := exec.Command(p, "stat", "-x,", "--no-big-num", "-e", "raw_syscalls:sys_enter", "-p", strconv.Itoa(pid))
		cmd.Stderr = &c.out
		if cmd.Start() == nil {
			// perf says nothing until it stops: give it a moment to attach.
			time.Sleep(200 * time.Millisecond)
			if cmd.ProcessState == nil {
				c.perf = cmd
			}
		}
	}
	c.io0 = procIOCalls(pid)
	return c
}

// stop returns the calls counted and how ("perf", "proc-io"); 0 and ""
// when neither could count.
func (c *syscallCount) stop() (float64, string) {
	if c == nil {
		return 0, ""
	}
	io1 := procIOCalls(c.pid)
	if c.perf != nil {
		c.perf.Process.Signal(syscall.SIGINT)
		c.perf.Wait()
		for _, line := range strings.Split(c.out.String(), "\n") {
			f := strings.Split(line, ",")
			if len(f) > 2 && strings.HasPrefix(f[2], "raw_syscalls:sys_enter") {
				if n, err := strconv.ParseFloat(f[0], 64); err == nil {
					return n, "perf"
				}
			}
		}
	}
	if io1 > c.io0 {
		return float64(io1 - c.io0), "proc-io"
	}
	return 0, ""
}

// procIOCalls is syscr+syscw of /proc/PID/io.
func procIOCalls(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && (k == "syscr" || k == "syscw") {
			x, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			n += x
		}
	}
	return n
}
