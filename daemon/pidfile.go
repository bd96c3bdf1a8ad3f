package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"zend/daemon/trust"

	"golang.org/x/sys/unix"
)

// ErrRunning is returned by AcquirePidfile when a live daemon holds the
// lock.
var ErrRunning = errors.New("already running")

// Pidfile is what a daemon holds in its pidfile folder for its life: a
// lock and the pidfile.
//
// The lock is a file of its own (LockPath), mode 0600, that only root (or
// the user who started zend) can open, held with flock(LOCK_EX) through a
// descriptor: no other user can hold it and so block a start, as a shared
// lock on the world-readable pidfile could. The pidfile holds the pid for
// readers (zend stop, systemd's PIDFile=, logrotate); it is written
// atomically (a temporary file renamed over it) by the process that
// created the folder's files, and rewritten in place through its
// descriptor by a daemon that no longer has the right to create files
// there (after an upgrade by an unprivileged daemon). Both descriptors
// pass to the new daemon of an upgrade, so the lock is never let go.
type Pidfile struct {
	path string
	lock *os.File // flock'ed LOCK_EX
	file *os.File // the pidfile, open read-write; nil until Publish
}

// LockPath returns the lock file of the daemon whose pidfile is pidfile:
// the same path with ".lock" instead of ".pid".
func LockPath(pidfile string) string {
	return strings.TrimSuffix(pidfile, ".pid") + ".lock"
}

// AcquirePidfile takes the lock of the daemon whose pidfile is path. The
// folder is created (0755) when missing and must be one only its owner
// (root, or the user running zend) can change (trust.ErrUntrusted otherwise).
// It returns an error wrapping ErrRunning, naming the running pid when the
// pidfile has one, when a live daemon holds the lock. Publish writes the
// pid.
func AcquirePidfile(path string) (*Pidfile, error) {
	dir, err := trust.OpenDir(filepath.Dir(path), 0o755)
	if err != nil {
		return nil, fmt.Errorf("pidfile folder: %w", err)
	}
	defer dir.Close()
	lock, err := dir.Open(filepath.Base(LockPath(path)), unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := lock.Chmod(0o600); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if other, rerr := ReadPid(path); rerr == nil && other > 0 {
				return nil, fmt.Errorf("pidfile %s: %w (pid %d)", path, ErrRunning, other)
			}
			return nil, fmt.Errorf("pidfile %s: %w", path, ErrRunning)
		}
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	return &Pidfile{path: path, lock: lock}, nil
}

// InheritPidfile takes over the lock and pidfile descriptors of the daemon
// this one upgrades.
func InheritPidfile(path string, lockFD, fileFD int) *Pidfile {
	unix.CloseOnExec(lockFD)
	unix.CloseOnExec(fileFD)
	return &Pidfile{path: path, lock: os.NewFile(uintptr(lockFD), LockPath(path)), file: os.NewFile(uintptr(fileFD), path)}
}

// Publish writes pid into the pidfile atomically: a temporary file in the
// checked folder, renamed over the path. It keeps the new file open for
// Rewrite and Release. With owner set (uid, gid), the file is given to the
// user the daemon drops to: that user can rewrite it in place anyway (an
// upgrade needs it to), and systemd trusts a pidfile that is not root's
// only for a pid inside the service, so the daemon's user cannot make it
// adopt (and later kill) another process.
func (p *Pidfile) Publish(pid int, owner *[2]int) error {
	dir, err := trust.OpenDir(filepath.Dir(p.path), 0)
	if err != nil {
		return fmt.Errorf("pidfile folder: %w", err)
	}
	defer dir.Close()
	base := filepath.Base(p.path)
	tmp := fmt.Sprintf(".%s.%d", base, pid)
	dir.Remove(tmp)
	f, err := dir.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	_, err = f.WriteString(strconv.Itoa(pid) + "\n")
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil && owner != nil {
		err = f.Chown(owner[0], owner[1])
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = unix.Renameat(dir.Fd(), tmp, dir.Fd(), base)
	}
	if err != nil {
		f.Close()
		dir.Remove(tmp)
		return fmt.Errorf("pidfile %s: write: %w", p.path, err)
	}
	if p.file != nil {
		p.file.Close()
	}
	p.file = f
	return nil
}

// Rewrite replaces the pid in place through the open pidfile (a daemon
// that may not create files in the folder). The new pid is written in one
// write, padded with newlines over the old content, then the file is cut:
// a reader sees the old pid, or the new one followed by blank lines.
func (p *Pidfile) Rewrite(pid int) error {
	if p.file == nil {
		return errors.New("pidfile: not published")
	}
	line := strconv.Itoa(pid) + "\n"
	buf := []byte(line)
	if fi, err := p.file.Stat(); err == nil && fi.Size() > int64(len(buf)) {
		buf = append(buf, strings.Repeat("\n", int(fi.Size())-len(buf))...)
	}
	if _, err := p.file.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("pidfile %s: rewrite: %w", p.path, err)
	}
	if err := p.file.Truncate(int64(len(line))); err != nil {
		return fmt.Errorf("pidfile %s: rewrite: %w", p.path, err)
	}
	return nil
}

// Files returns the lock and the pidfile, for the new daemon of an
// upgrade; they stay owned by p.
func (p *Pidfile) Files() (lock, file *os.File) { return p.lock, p.file }

// Release is the daemon's exit: the pidfile, when it still names pid, is
// emptied through its descriptor and, where this process may, removed with
// the control socket (while the lock is still held, so no new daemon is
// affected); then the lock is let go.
func (p *Pidfile) Release(pid int) error {
	var err error
	if p.file != nil {
		if got, rerr := readPidFrom(p.file); rerr == nil && got == pid {
			if terr := p.file.Truncate(0); terr != nil {
				err = fmt.Errorf("pidfile %s: empty: %w", p.path, terr)
			}
			if dir, derr := trust.OpenDir(filepath.Dir(p.path), 0); derr == nil {
				if os.Geteuid() == 0 || dirWritable(dir) {
					dir.Remove(filepath.Base(p.path))
					dir.Remove(filepath.Base(ControlPath(p.path)))
				}
				dir.Close()
			}
		}
	}
	p.Close()
	return err
}

// dirWritable reports whether this process may create and remove files in
// dir.
func dirWritable(d *trust.Dir) bool {
	return unix.Faccessat(d.Fd(), ".", unix.W_OK, unix.AT_EACCESS) == nil
}

// Close lets go of the lock and the pidfile without touching either: the
// new daemon of an upgrade holds them now.
func (p *Pidfile) Close() {
	if p.file != nil {
		p.file.Close()
		p.file = nil
	}
	if p.lock != nil {
		p.lock.Close()
		p.lock = nil
	}
}

// readPidFrom reads the pid in an open pidfile: 0 when it is empty.
func readPidFrom(f *os.File) (int, error) {
	buf := make([]byte, 64)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil && !errors.Is(err, os.ErrClosed) {
		return 0, nil
	}
	return parsePid(f.Name(), buf[:n])
}

// parsePid parses a pidfile's content: 0 for an empty file.
func parsePid(path string, b []byte) (int, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid < 1 {
		return 0, fmt.Errorf("pidfile %s: %w", path, errNoPid)
	}
	return pid, nil
}

// errNoPid is wrapped by the error of a pidfile that holds something other
// than a pid.
var errNoPid = errors.New("no pid in it")

// maxPidfile is the most of a pidfile read: a pid and its newline, with
// room for blank lines an in-place rewrite leaves.
const maxPidfile = 64

// ReadPid reads the pid in the pidfile at path: 0 when the file is missing
// or empty (a daemon that stopped), an error for anything but a pid. It
// reads at most maxPidfile bytes, whatever the file holds.
func ReadPid(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, maxPidfile+1)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, err
	}
	if n > maxPidfile {
		return 0, fmt.Errorf("pidfile %s: more than %d bytes: %w", path, maxPidfile, errNoPid)
	}
	return parsePid(path, b[:n])
}

// PidState is what the lock and the pidfile say about a daemon.
type PidState int

const (
	// NotRunning: no daemon holds the lock, and no pidfile names one.
	NotRunning PidState = iota
	// Stale: no daemon holds the lock, but the pidfile names a pid (the
	// daemon died without cleaning up).
	Stale
	// Running: a live daemon holds the lock.
	Running
)

// CheckPidfile tells whether a daemon holds the lock of the pidfile at
// path, and the pid the pidfile names (0 when none). It changes nothing and
// takes no lock. The error is that of a pidfile or lock that cannot be
// read.
func CheckPidfile(path string) (PidState, int, error) {
	pid, err := ReadPid(path)
	if err != nil && !errors.Is(err, errNoPid) {
		return NotRunning, 0, err
	}
	if err != nil {
		// Garbage, written by whoever could: no pid. The lock says
		// whether a daemon runs; a stale one is taken over or removed.
		held, lerr := lockHeld(LockPath(path))
		switch {
		case lerr != nil:
			return NotRunning, 0, lerr
		case held:
			return Running, 0, nil
		}
		return Stale, 0, nil
	}
	held, err := lockHeld(LockPath(path))
	switch {
	case err != nil:
		return NotRunning, pid, err
	case held:
		return Running, pid, nil
	case pid > 0:
		return Stale, pid, nil
	}
	return NotRunning, 0, nil
}

// lockHeld reports whether some process holds a lock on the file at path.
// It reads /proc/locks first, which needs no access to the file (so any
// user's "zend status" works); when that shows no lock and the file can be
// opened, a shared lock tried for a moment decides.
func lockHeld(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	// /proc/locks is read in pieces, not as one snapshot: a line can be
	// missed while other processes take and drop locks. A lock seen once
	// is held; one missed is looked for again.
	var inProc, procOK bool
	for try := 0; try < 5 && !inProc; try++ {
		inProc, procOK = procLocksHold(&st)
	}
	if inProc {
		return true, nil
	}
	f, err := os.Open(path)
	if err != nil {
		if procOK {
			return false, nil
		}
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	defer f.Close()
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); {
	case err == nil:
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, nil
	default:
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
}

// procLocksHold reports whether /proc/locks lists a lock on the file st
// describes, and whether /proc/locks could be read at all.
func procLocksHold(st *unix.Stat_t) (held, ok bool) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return false, false
	}
	defer f.Close()
	// "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 5 && fields[5] == want {
			return true, true
		}
	}
	return false, sc.Err() == nil
}

// owner returns the uid that created the lock: the user who started zend.
func (p *Pidfile) owner() int {
	var st unix.Stat_t
	if p.lock == nil || unix.Fstat(int(p.lock.Fd()), &st) != nil {
		return 0
	}
	return int(st.Uid)
}
