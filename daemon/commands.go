package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"zend/config"
	"zend/daemon/trust"
)

// ErrNotRunning is returned by Reload when no daemon holds the pidfile.
var ErrNotRunning = errors.New("not running")

// findDaemon reads the lock and pidfile of src and, when a daemon holds
// the lock, proves that the pid in the pidfile is that daemon (see
// proveDaemon). It returns the pidfile, its state, and the proven daemon
// (nil unless Running). A running daemon that cannot be proven is an error
// wrapping ErrUnproven; so is a pidfile that cannot be read.
func findDaemon(src config.Source) (pidfile string, state PidState, d *daemonProc, err error) {
	pidfile, err = src.Pidfile()
	if err != nil {
		return "", NotRunning, nil, err
	}
	state, pid, err := CheckPidfile(pidfile)
	if err != nil || state != Running {
		return pidfile, state, nil, err
	}
	// A daemon between taking the lock and writing its pid, or an
	// upgrade rewriting it: the pid comes within a moment.
	for end := time.Now().Add(2 * time.Second); pid == 0 && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		state, pid, err = CheckPidfile(pidfile)
		if err != nil || state != Running {
			return pidfile, state, nil, err
		}
	}
	d, err = proveDaemon(pidfile, pid)
	return pidfile, state, d, err
}

// Stop sends SIGTERM to the daemon named by the pidfile, once proven to be
// it, and waits until it has exited: it drains for up to
// limits.shutdown_timeout and then closes what is left itself; if it is
// still there 10 s after that, it is killed. Nothing running is not an
// error ("not running" on stderr); a stale pidfile is removed. It returns
// the error of a configuration file that cannot be read, one wrapping
// ErrUnproven for a pid that cannot be proven to be the daemon (nothing is
// signalled), or that of a daemon that does not go.
func Stop(src config.Source, stderr io.Writer) error {
	drain := config.Default().Limits.ShutdownTimeout.D()
	if cfg, err := src.Load(); err == nil {
		drain = cfg.Limits.ShutdownTimeout.D()
	}
	pidfile, state, d, err := findDaemon(src)
	if err != nil {
		return err
	}
	switch state {
	case NotRunning:
		removeLeftovers(pidfile)
		fmt.Fprintf(stderr, "zend: not running (pidfile %s)\n", pidfile)
		return nil
	case Stale:
		pid, _ := ReadPid(pidfile)
		fmt.Fprintf(stderr, "zend: not running (removed the stale pidfile %s of pid %d)\n", pidfile, pid)
		removeLeftovers(pidfile)
		return nil
	}
	defer d.close()
	if err := d.signal(syscall.SIGTERM); err != nil {
		return err
	}
	pid := d.pid
	if !d.wait(drain + 10*time.Second) {
		fmt.Fprintf(stderr, "zend: pid %d still running %v after SIGTERM, killing it\n", pid, drain+10*time.Second)
		d.signal(syscall.SIGKILL)
		if !d.wait(10 * time.Second) {
			return fmt.Errorf("pid %d survived SIGKILL", pid)
		}
	}
	// A daemon that dropped its privileges may not remove its pidfile and
	// control socket from root's folder: it empties the pidfile, and the
	// files are removed here.
	if st, _, _ := CheckPidfile(pidfile); st != Running {
		removeLeftovers(pidfile)
	}
	return nil
}

// removeLeftovers removes the pidfile and control socket of a daemon that
// no longer runs, through the checked folder; the lock file stays (a lock
// file removed while another process opens it is how two daemons end up
// both holding "the" lock).
func removeLeftovers(pidfile string) {
	dir, err := trust.OpenDir(filepath.Dir(pidfile), 0)
	if err != nil {
		return
	}
	defer dir.Close()
	dir.Remove(filepath.Base(pidfile))
	dir.Remove(filepath.Base(ControlPath(pidfile)))
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
	Warning string  // what is wrong with the pidfile, "" when nothing
}

// QueryDaemon finds the daemon of src through its lock and pidfile and
// asks it for its status. It returns an error when the configuration file
// or the pidfile cannot be read (the state is unknown then).
func QueryDaemon(src config.Source) (StatusReport, error) {
	pidfile, err := src.Pidfile()
	if err != nil {
		return StatusReport{}, err
	}
	r := StatusReport{Pidfile: pidfile}
	state, pid, err := CheckPidfile(pidfile)
	r.State, r.Pid = state, pid
	if err != nil {
		return r, err
	}
	if state == Running {
		st, answered, err := queryStatus(ControlPath(pidfile))
		switch {
		case err != nil:
			r.Err = err
		case answered != pid:
			// The daemon is the one that answers; the pidfile is wrong.
			r.Pid, r.Status = answered, &st
			r.Warning = fmt.Sprintf("the pidfile %s names pid %d, which is not the daemon: stop, reload, reopen and upgrade refuse until it names %d", pidfile, pid, answered)
		default:
			r.Status = &st
		}
	}
	return r, nil
}

// Reload validates the configuration of src, sends SIGHUP to the daemon
// (once proven to be it) and waits (up to timeout) for its verdict. It
// returns the daemon's pid and the changed keys that wait for a restart,
// with a nil error when the daemon applied the new configuration; an
// error matching config.ErrInvalid when the file is invalid (nothing is
// signalled); ErrNotRunning; one wrapping ErrUnproven; or the daemon's own
// reason for refusing it.
func Reload(src config.Source, timeout time.Duration) (pid int, pending []string, err error) {
	if _, err := src.Load(); err != nil {
		return 0, nil, err
	}
	pidfile, state, d, err := findDaemon(src)
	if err != nil {
		return 0, nil, err
	}
	if state != Running {
		return 0, nil, fmt.Errorf("zend is %w (pidfile %s)", ErrNotRunning, pidfile)
	}
	defer d.close()
	pid = d.pid
	before, qerr := QueryStatus(ControlPath(pidfile))
	if err := d.signal(syscall.SIGHUP); err != nil {
		return pid, nil, err
	}
	if qerr != nil {
		return pid, nil, fmt.Errorf("sent SIGHUP to pid %d but cannot learn the outcome: %w", pid, qerr)
	}
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		st, err := QueryStatus(ControlPath(pidfile))
		if err != nil {
			continue
		}
		if st.LastReload.Gen > before.LastReload.Gen {
			if !st.LastReload.OK {
				return pid, nil, errors.New("the daemon refused the new configuration and keeps the running one: " + st.LastReload.Error)
			}
			return pid, st.Pending, nil
		}
	}
	return pid, nil, fmt.Errorf("sent SIGHUP to pid %d, no verdict within %v", pid, timeout)
}

// Reopen asks the daemon of src (once proven to be it) to reopen its log
// file (SIGUSR1), for logrotate's postrotate. It returns the pid
// signalled, ErrNotRunning, an error wrapping ErrUnproven, or that of a
// configuration file that cannot be read. Whether the reopen worked is in
// the log (and zend_log_reopen_failures_total): a failure is logged at
// error level into the file still open.
func Reopen(src config.Source) (int, error) {
	pidfile, state, d, err := findDaemon(src)
	if err != nil {
		return 0, err
	}
	if state != Running {
		return 0, fmt.Errorf("zend is %w (pidfile %s)", ErrNotRunning, pidfile)
	}
	defer d.close()
	return d.pid, d.signal(syscall.SIGUSR1)
}
