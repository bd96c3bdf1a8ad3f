package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnproven is wrapped by the error of a pid that cannot be proven to be
// the zend daemon of a pidfile: it is not signalled.
var ErrUnproven = errors.New("cannot prove that it is this zend daemon")

// daemonProc is a daemon proven to be the one that holds a pidfile's lock,
// pinned by a pidfd where the kernel has them, so a signal cannot reach
// another process that reused the pid.
type daemonProc struct {
	pid   int
	pidfd int // -1 without pidfd support
}

// proveDaemon proves that pid is the daemon of pidfile: the process (pinned
// first by a pidfd) has the pidfile's lock file open. Only the daemon, or
// a process it handed the descriptor to (the new daemon of an upgrade),
// can: the lock file is opened by root (or the user who started zend)
// only. A pid written into the pidfile by anyone else, or reused by
// another process, fails with an error wrapping ErrUnproven. The caller
// closes the result.
func proveDaemon(pidfile string, pid int) (*daemonProc, error) {
	if pid < 1 {
		return nil, fmt.Errorf("pidfile %s names no pid: %w", pidfile, ErrUnproven)
	}
	p := &daemonProc{pid: pid, pidfd: -1}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		p.pidfd = fd
	} else if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("pid %d (pidfile %s) does not exist: %w", pid, pidfile, ErrUnproven)
	}
	var lock unix.Stat_t
	if err := unix.Stat(LockPath(pidfile), &lock); err != nil {
		p.close()
		return nil, fmt.Errorf("lock: %w: %w", err, ErrUnproven)
	}
	held, err := holdsFile(pid, &lock)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("pid %d (pidfile %s): %w: %w", pid, pidfile, err, ErrUnproven)
	}
	if !held {
		p.close()
		return nil, fmt.Errorf("pid %d (pidfile %s) does not hold the daemon's lock %s: %w", pid, pidfile, LockPath(pidfile), ErrUnproven)
	}
	return p, nil
}

// holdsFile reports whether pid has a descriptor open on the file st
// describes.
func holdsFile(pid int, st *unix.Stat_t) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read its descriptors: %w", err)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		var fst unix.Stat_t
		if unix.Stat(filepath.Join(dir, e.Name()), &fst) == nil && fst.Dev == st.Dev && fst.Ino == st.Ino {
			return true, nil
		}
	}
	return false, nil
}

// signal sends sig to the proven process.
func (p *daemonProc) signal(sig syscall.Signal) error {
	if p.pidfd >= 0 {
		if err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0); err == nil || !errors.Is(err, unix.ENOSYS) {
			if err != nil {
				return fmt.Errorf("signal pid %d: %w", p.pid, err)
			}
			return nil
		}
	}
	if err := syscall.Kill(p.pid, sig); err != nil {
		return fmt.Errorf("signal pid %d: %w", p.pid, err)
	}
	return nil
}

func (p *daemonProc) close() {
	if p != nil && p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}
