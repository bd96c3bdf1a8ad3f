package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrRunning is returned by AcquirePidfile when a live daemon holds the
// pidfile.
var ErrRunning = errors.New("already running")

// Pidfile is a pidfile held, with a lock, for the life of the daemon.
//
// The path's file is locked with flock(LOCK_EX) as long as the daemon
// lives; a pidfile that exists but is not locked was left by a daemon that
// died, and is taken over. The pid is written to a temporary file in the
// same folder that is locked too and renamed over the path, so a reader
// never sees a half-written file.
type Pidfile struct {
	path string
	held []*os.File // the locked files: the path's old inode and the new one
}

// AcquirePidfile creates (with its folder, 0755, when missing) and locks
// the pidfile at path and writes pid into it. It returns an error wrapping
// ErrRunning, naming the running pid, when a live daemon holds it.
func AcquirePidfile(path string, pid int) (*Pidfile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pidfile: create folder: %w", err)
	}
	p := &Pidfile{path: path}
	for attempt := 0; ; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("pidfile: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				if other, rerr := ReadPid(path); rerr == nil {
					return nil, fmt.Errorf("pidfile %s: %w (pid %d)", path, ErrRunning, other)
				}
				return nil, fmt.Errorf("pidfile %s: %w", path, ErrRunning)
			}
			return nil, fmt.Errorf("pidfile %s: lock: %w", path, err)
		}
		// The file may have been replaced between open and lock (a
		// daemon writing its pid, or one removing its pidfile at exit):
		// the lock counts only if it is on the file the path names now.
		if sameFile(f, path) {
			p.held = append(p.held, f)
			break
		}
		f.Close()
		if attempt > 100 {
			return nil, fmt.Errorf("pidfile %s: keeps changing under us", path)
		}
	}
	if err := p.write(pid); err != nil {
		p.Release()
		return nil, err
	}
	return p, nil
}

// write replaces the pidfile's content atomically: a locked temporary file
// in the same folder, renamed over the path.
func (p *Pidfile) write(pid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(p.path), "."+filepath.Base(p.path)+".*")
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("pidfile: lock: %w", err)
	}
	_, err = tmp.WriteString(strconv.Itoa(pid) + "\n")
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p.path)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("pidfile: write: %w", err)
	}
	p.held = append(p.held, tmp)
	return nil
}

// Path returns the pidfile's path.
func (p *Pidfile) Path() string { return p.path }

// Release removes the pidfile (while still holding its lock, so no other
// daemon can take it over in between) and drops the locks.
func (p *Pidfile) Release() error {
	var err error
	if len(p.held) > 0 && sameFile(p.held[len(p.held)-1], p.path) {
		if rerr := os.Remove(p.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("pidfile: remove: %w", rerr)
		}
	}
	for _, f := range p.held {
		f.Close()
	}
	p.held = nil
	return err
}

// Fds returns the descriptors of the locked files, which must stay open in
// the daemon.
func (p *Pidfile) Fds() []uintptr {
	out := make([]uintptr, len(p.held))
	for i, f := range p.held {
		out[i] = f.Fd()
	}
	return out
}

// sameFile reports whether the open file f is the file path names now.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// ReadPid reads the pid in the pidfile at path.
func ReadPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 1 {
		return 0, fmt.Errorf("pidfile %s: no pid in %q", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// PidState is what a pidfile says about its daemon.
type PidState int

const (
	// NotRunning: there is no pidfile.
	NotRunning PidState = iota
	// Stale: a pidfile exists but no daemon holds its lock.
	Stale
	// Running: a live daemon holds the pidfile's lock.
	Running
)

// CheckPidfile tells whether a daemon holds the pidfile at path, and its
// pid when the file has one. It does not change the file.
func CheckPidfile(path string) (PidState, int, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return NotRunning, 0, nil
		}
		return NotRunning, 0, fmt.Errorf("pidfile: %w", err)
	}
	defer f.Close()
	pid, _ := ReadPid(path)
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	switch {
	case err == nil:
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return Stale, pid, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return Running, pid, nil
	}
	return NotRunning, pid, fmt.Errorf("pidfile %s: lock: %w", path, err)
}

// Unlock drops the locks without removing the file: a new daemon that is
// waiting for the lock takes the pidfile over and writes its own pid.
func (p *Pidfile) Unlock() {
	for _, f := range p.held {
		f.Close()
	}
	p.held = nil
}

// AcquirePidfileWait is AcquirePidfile, waiting up to d while another
// daemon still holds the lock (the old daemon of an upgrade).
func AcquirePidfileWait(path string, pid int, d time.Duration) (*Pidfile, error) {
	end := time.Now().Add(d)
	for {
		p, err := AcquirePidfile(path, pid)
		if err == nil || !errors.Is(err, ErrRunning) || time.Now().After(end) {
			return p, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
