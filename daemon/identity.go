package daemon

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnproven is wrapped by the error of a pid that cannot be proven to be
// the zend daemon of a pidfile: it is not signalled.
var ErrUnproven = errors.New("cannot prove that it is this zend daemon")

// daemonProc is a daemon proven to be the one that serves a pidfile's
// control socket, pinned by a pidfd where the kernel has them, so a
// signal cannot reach another process that reused the pid.
type daemonProc struct {
	pid   int
	pidfd int // -1 without pidfd support
}

// proveDaemon proves that pid, named by pidfile, is its daemon: the
// process (pinned first by a pidfd) is the one that answers on the control
// socket beside the pidfile, as the kernel attests (SO_PASSCRED). Only
// the daemon holds that socket: root creates it, mode 0600, in a folder
// only root can change, and the listener passes only to the new daemon of
// an upgrade. It needs no access to the daemon's /proc entries, which a
// service manager's sandbox may hide (ProtectProc=, no CAP_SYS_PTRACE). A
// pid written into the pidfile by anyone else, or reused by another
// process, fails with an error wrapping ErrUnproven. The caller closes the
// result.
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
	_, answered, err := queryStatus(ControlPath(pidfile))
	switch {
	case err != nil:
		p.close()
		return nil, fmt.Errorf("pid %d (pidfile %s): the daemon's control socket does not answer (%w): %w", pid, pidfile, err, ErrUnproven)
	case answered != pid:
		p.close()
		return nil, fmt.Errorf("pidfile %s names pid %d, but pid %d answers on the daemon's control socket: %w", pidfile, pid, answered, ErrUnproven)
	}
	return p, nil
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
