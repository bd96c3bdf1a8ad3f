package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"zend/config"
)

// ErrNotRunning is returned by Reload when no daemon holds the pidfile.
var ErrNotRunning = errors.New("not running")

// Stop sends SIGTERM to the daemon named by the pidfile and waits until it
// has exited: it drains for up to limits.shutdown_timeout and then closes
// what is left itself; if it is still there 10 s after that, it is killed.
// Nothing running is not an error ("not running" on stderr). A stale
// pidfile is removed.
func Stop(src config.Source, stderr io.Writer) error {
	pidfile := src.Pidfile()
	drain := config.Default().Limits.ShutdownTimeout.D()
	if cfg, err := src.Load(); err == nil {
		drain = cfg.Limits.ShutdownTimeout.D()
	}
	state, pid, err := CheckPidfile(pidfile)
	if err != nil {
		return err
	}
	switch state {
	case NotRunning:
		fmt.Fprintln(stderr, "zend: not running")
		return nil
	case Stale:
		fmt.Fprintf(stderr, "zend: not running (removed the stale pidfile %s of pid %d)\n", pidfile, pid)
		os.Remove(pidfile)
		return nil
	}
	if pid < 1 {
		return fmt.Errorf("pidfile %s is locked but holds no pid", pidfile)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	if !waitGone(pid, drain+10*time.Second) {
		fmt.Fprintf(stderr, "zend: pid %d still running %v after SIGTERM, killing it\n", pid, drain+10*time.Second)
		syscall.Kill(pid, syscall.SIGKILL)
		if !waitGone(pid, 10*time.Second) {
			return fmt.Errorf("pid %d survived SIGKILL", pid)
		}
	}
	// A daemon that could not remove its pidfile (its folder is not its
	// own after dropping privileges) leaves it unlocked: remove it.
	if st, _, _ := CheckPidfile(pidfile); st == Stale {
		os.Remove(pidfile)
	}
	return nil
}

// waitGone waits up to d for pid to exit (a zombie counts as exited).
func waitGone(pid int, d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// StatusReport is what Status found.
type StatusReport struct {
	State   PidState
	Pid     int
	Pidfile string
	Status  *Status // nil when the daemon did not answer
	Err     error   // why it did not
}

// QueryDaemon finds the daemon of src through its pidfile and asks it for
// its status.
func QueryDaemon(src config.Source) StatusReport {
	r := StatusReport{Pidfile: src.Pidfile()}
	state, pid, err := CheckPidfile(r.Pidfile)
	r.State, r.Pid = state, pid
	if err != nil {
		r.Err = err
		return r
	}
	if state == Running {
		st, err := QueryStatus(ControlPath(r.Pidfile))
		if err != nil {
			r.Err = err
		} else {
			r.Status = &st
		}
	}
	return r
}

// Reload validates the configuration of src, sends SIGHUP to the daemon
// and waits (up to timeout) for its verdict. It returns nil when the daemon
// applied the new configuration; an error matching config.ErrInvalid when
// the file is invalid (nothing is signalled); ErrNotRunning; or the
// daemon's own reason for refusing it.
func Reload(src config.Source, timeout time.Duration) (pid int, err error) {
	cfg, err := src.Load()
	if err != nil {
		return 0, err
	}
	pidfile := cfg.Abs(cfg.Daemon.Pidfile)
	state, pid, err := CheckPidfile(pidfile)
	if err != nil {
		return 0, err
	}
	if state != Running {
		return pid, fmt.Errorf("zend is %w (pidfile %s)", ErrNotRunning, pidfile)
	}
	before, qerr := QueryStatus(ControlPath(pidfile))
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return pid, fmt.Errorf("signal pid %d: %w", pid, err)
	}
	if qerr != nil {
		return pid, fmt.Errorf("sent SIGHUP to pid %d but cannot learn the outcome: %w", pid, qerr)
	}
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		st, err := QueryStatus(ControlPath(pidfile))
		if err != nil {
			continue
		}
		if st.LastReload.Gen > before.LastReload.Gen {
			if !st.LastReload.OK {
				return pid, errors.New("the daemon refused the new configuration and keeps the running one: " + st.LastReload.Error)
			}
			return pid, nil
		}
	}
	return pid, fmt.Errorf("sent SIGHUP to pid %d, no verdict within %v", pid, timeout)
}
