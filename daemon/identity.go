package daemon

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

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
// socket beside the pidfile, as the kernel attests (SO_PASSCRED on Linux,
// a connection's peer credentials elsewhere: see cred_bsd.go). Only
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
	if fd, err := pidfdOpen(pid); err == nil {
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

// wait waits up to d for the proven process to exit, through its pidfd
// when there is one (a reused pid cannot keep it waiting), else by pid.
func (p *daemonProc) wait(d time.Duration) bool {
	if p.pidfd < 0 {
		return waitGone(p.pid, d)
	}
	end := time.Now().Add(d)
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
	for {
		left := time.Until(end)
		if left <= 0 {
			return false
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return waitGone(p.pid, left)
		}
	}
}

// watchExit returns a channel closed when pid exits (at once when it is
// already gone), watched through a pidfd, or by the parent pid changing
// where there are none (pid is this process's parent then).
func watchExit(pid int) <-chan struct{} {
	ch := make(chan struct{})
	fd, err := pidfdOpen(pid)
	go func() {
		defer close(ch)
		switch {
		case err == nil:
			defer unix.Close(fd)
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			for {
				if n, err := unix.Poll(fds, -1); (err == nil && n > 0) || (err != nil && !errors.Is(err, unix.EINTR)) {
					return
				}
			}
		case errors.Is(err, unix.ESRCH):
			return
		default:
			for os.Getppid() == pid {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	return ch
}

// signal sends sig to the proven process.
func (p *daemonProc) signal(sig syscall.Signal) error {
	if p.pidfd >= 0 {
		if err := pidfdSendSignal(p.pidfd, sig); err == nil || !errors.Is(err, unix.ENOSYS) {
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
