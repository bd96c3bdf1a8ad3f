package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"zend/config"
)

// Zero-downtime binary upgrade, as nginx does it with SIGUSR2, done within
// the daemon rather than with tableflip: the new daemon must go through
// zend's own readiness pipe, pidfile lock and control socket, which
// tableflip would duplicate. The running daemon starts the binary on disk
// (the path the operator ran, not the file it resolved to then) as the
// daemon stage of "zend start" and hands it, by descriptor, every
// listening socket (so there is never a moment without a listener), the
// metrics and control sockets, the lock and the pidfile: the new daemon
// needs no privilege the old one dropped. The lock is held throughout
// (both hold the same open file). When the new daemon reports ZEND-READY,
// the old one writes the new pid into the pidfile (before it exits, so
// systemd's PIDFile= follows the new main process), lets go of its copies
// and drains. If the new one fails, the old one keeps serving, the pidfile
// still names it, and the reason is recorded.

// UpgradeResult is the outcome of the last upgrade.
type UpgradeResult struct {
	Gen    int       `json:"gen"`
	OK     bool      `json:"ok"`
	NewPid int       `json:"new_pid,omitempty"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// upgrader is what the daemon needs to start its successor.
type upgrader struct {
	exe  string        // the binary's path, as started: a new file there is the upgrade
	src  config.Source // where the configuration comes from
	pf   *Pidfile      // nil under "zend run"
	ctl  *control
	ms   *metricsServer
	busy bool
	// child is the new daemon while an upgrade is under way, 0 otherwise.
	child int
	// owner is the user who started zend (root, normally): the binary
	// an upgrade runs, and the folders leading to it, must be that
	// user's or root's, and writable by nobody else.
	owner int
}

// upgradeOutcome is what a started upgrade reports to the loop.
type upgradeOutcome struct {
	pid int
	err error
}

// start launches the new daemon and reports on the returned channel.
func (u *upgrader) start(in *instance) <-chan upgradeOutcome {
	out := make(chan upgradeOutcome, 1)
	fail := func(err error) <-chan upgradeOutcome {
		out <- upgradeOutcome{err: err}
		return out
	}
	if err := upgradeRefused(); err != nil { // the proof would not follow
		return fail(err)
	}
	if err := safeBinary(u.exe, u.owner); err != nil {
		return fail(err)
	}
	lfds, err := in.svc.ListenerFDs()
	if err != nil {
		return fail(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer w.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		r.Close()
		return fail(err)
	}
	defer null.Close()
	// Raw descriptors, not *os.File: the listening sockets are shared
	// with this daemon's event loops and must stay non-blocking.
	files := []uintptr{null.Fd(), null.Fd(), w.Fd(), w.Fd()}
	var fds []string
	for _, fd := range lfds {
		files = append(files, uintptr(fd))
		fds = append(fds, strconv.Itoa(len(files)-1))
	}
	env := append(os.Environ(), envStage+"=2", envReadyFD+"=3", envUpgrade+"="+strconv.Itoa(os.Getpid()))
	if len(fds) > 0 {
		env = append(env, envListenFDs+"="+strings.Join(fds, ","))
		if addrs := in.svc.ownAddrs(); len(addrs) == len(fds) {
			env = append(env, envListenAddrs+"="+strings.Join(addrs, ","))
		}
	}
	pass := func(name string, fd int) {
		files = append(files, uintptr(fd))
		env = append(env, name+"="+strconv.Itoa(len(files)-1))
	}
	if fd := u.ms.fd(); fd >= 0 {
		pass(envMetricsFD, fd)
	}
	cfd, err := rawFD(u.ctl.ln)
	if err != nil {
		r.Close()
		return fail(fmt.Errorf("control socket: %w", err))
	}
	lock, pidfile := u.pf.Files()
	pass(envLockFD, int(lock.Fd()))
	pass(envPidfileFD, int(pidfile.Fd()))
	pass(envControlFD, cfd)
	env = append(env, envPidfile+"="+u.pf.path)
	args := []string{u.exe}
	if u.src.Path != "" {
		args = append(args, "-c", u.src.Path)
	}
	for _, s := range u.src.Sets {
		args = append(args, "-set", s)
	}
	args = append(args, "start")
	// The new daemon inherits no_new_privs from the thread that forks it,
	// whatever the build (see lockPrivileges).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := execNoNewPrivs(); err != nil {
		r.Close()
		return fail(fmt.Errorf("no_new_privs: %w", err))
	}
	pid, err := syscall.ForkExec(u.exe, args, &syscall.ProcAttr{Dir: "/", Env: env, Files: files})
	if err != nil {
		r.Close()
		return fail(fmt.Errorf("start %s: %w", u.exe, err))
	}
	u.child = pid
	go func() {
		defer r.Close()
		_, err := awaitReady(r, 30*time.Second)
		if err != nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		go func() { // reap it if it dies while this daemon lives
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}()
		// The pid is the one this daemon started, whatever the pipe
		// said: another process of the daemon's user could have written
		// to it while the new daemon started.
		out <- upgradeOutcome{pid: pid, err: err}
	}()
	return out
}

// handOver writes the new daemon's pid into the pidfile and lets go of
// this daemon's copies of the lock, pidfile and control socket: the new
// daemon holds them now.
func (u *upgrader) handOver(newPid int) error {
	err := u.pf.Rewrite(newPid)
	u.ctl.close()
	u.pf.Close()
	return err
}

// abandon kills the new daemon of an upgrade under way: this daemon is
// stopping, and a successor nobody hands over to would serve on with a
// pidfile that does not name it.
func (u *upgrader) abandon() {
	if u.child > 0 {
		syscall.Kill(u.child, syscall.SIGKILL)
	}
}

// upgradeDone records an outcome; true means hand over and drain.
func (in *instance) upgradeDone(o upgradeOutcome) bool {
	in.upgrader.busy = false
	in.upgrader.child = 0
	in.mu.Lock()
	in.upgradeRes.Gen++
	in.upgradeRes.At = time.Now()
	in.upgradeRes.OK = o.err == nil
	in.upgradeRes.NewPid = o.pid
	in.upgradeRes.Error = ""
	if o.err != nil {
		in.upgradeRes.Error = o.err.Error()
	}
	in.mu.Unlock()
	if o.err != nil {
		in.log.Error("upgrade failed, this daemon keeps serving", "err", o.err.Error())
		return false
	}
	in.log.Info("upgrade: the new daemon serves, handing over and draining", "new_pid", o.pid)
	if err := in.upgrader.handOver(o.pid); err != nil {
		in.log.Error("upgrade: the pidfile still names this daemon", "err", err.Error())
	}
	in.mu.Lock()
	in.handed = true
	in.mu.Unlock()
	return true
}

// ErrUpgradeFailed wraps the reason a new daemon gave for not starting.
var ErrUpgradeFailed = errors.New("upgrade failed")

// Upgrade asks the daemon of src (once proven to be it) to start the
// binary on disk in its place (SIGUSR2) and waits up to timeout for the
// outcome. It returns the old and new pids, ErrNotRunning, an error
// wrapping ErrUnproven, or one wrapping ErrUpgradeFailed with the new
// daemon's reason (the old one keeps serving then).
func Upgrade(src config.Source, timeout time.Duration) (oldPid, newPid int, err error) {
	pidfile, state, d, err := findDaemon(src)
	if err != nil {
		return 0, 0, err
	}
	if state != Running {
		return 0, 0, fmt.Errorf("zend is %w (pidfile %s)", ErrNotRunning, pidfile)
	}
	defer d.close()
	pid := d.pid
	before, qerr := QueryStatus(ControlPath(pidfile))
	if qerr != nil {
		return pid, 0, fmt.Errorf("cannot read the daemon's state before upgrading: %w", qerr)
	}
	if err := d.signal(syscall.SIGUSR2); err != nil {
		return pid, 0, err
	}
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if st, p2, _ := CheckPidfile(pidfile); st == Running && p2 != pid && p2 > 0 {
			if nd, err := proveDaemon(pidfile, p2); err == nil {
				nd.close()
				if s, err := QueryStatus(ControlPath(pidfile)); err == nil && s.Pid == p2 {
					return pid, p2, nil
				}
			}
		}
		if s, err := QueryStatus(ControlPath(pidfile)); err == nil && s.Pid == pid && s.LastUpgrade.Gen > before.LastUpgrade.Gen {
			if !s.LastUpgrade.OK {
				return pid, 0, fmt.Errorf("%w: %s; pid %d keeps serving", ErrUpgradeFailed, s.LastUpgrade.Error, pid)
			}
		}
	}
	return pid, 0, fmt.Errorf("sent SIGUSR2 to pid %d, no new daemon within %v", pid, timeout)
}

// safeBinary checks that exe, and every folder leading to it, belong to
// root or owner and that nobody else can change them (a sticky folder may
// be writable by all): the daemon, running as its user, is about to run
// it with the lock, the pidfile and the sockets, so a binary that user (or
// anyone) could replace would be a way in. A daemon that is not root also
// needs a binary it cannot read (see below).
func safeBinary(exe string, owner int) error {
	ok := func(uid uint32) bool { return uid == 0 || int(uid) == owner }
	path := "/"
	parts := strings.Split(strings.TrimPrefix(filepath.Clean(exe), "/"), "/")
	for i, part := range append([]string{""}, parts...) {
		if part != "" {
			path = filepath.Join(path, part)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return fmt.Errorf("upgrade: %s: %w", path, err)
		}
		last := i == len(parts)
		switch {
		case !ok(st.Uid):
			return fmt.Errorf("upgrade: %s is owned by uid %d: the binary and its folders must be root's", path, st.Uid)
		case st.Mode&0o022 != 0 && (last || st.Mode&unix.S_ISVTX == 0):
			return fmt.Errorf("upgrade: %s (mode %04o) can be changed by other users: the binary and its folders must be writable by root only", path, st.Mode&0o7777)
		case last && os.Geteuid() != 0 && readableBy(path, &credential{uid: os.Geteuid(), gid: os.Getegid()}) == nil:
			// A process starts dumpable unless its credentials change
			// at exec or it may not read its binary: the new daemon of an
			// upgrade starts as this user, so only a binary this user
			// cannot read keeps other processes of the user from tracing
			// it or copying its descriptors before it can protect itself.
			return fmt.Errorf("upgrade: %s (mode %04o) can be read by uid %d, the daemon's user: the new daemon would start open to every process of that user; make it execute-only for that user (chmod 0711 %s), as the Debian package does", path, st.Mode&0o7777, os.Geteuid(), path)
		}
	}
	return nil
}
