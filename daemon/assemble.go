package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"zend/config"
	"zend/daemon/logsink"
	"zend/daemon/trust"
)

// launch is what differs between the ways an instance starts; assemble
// does the rest the same way for all of them.
type launch struct {
	// daemon is "zend start" (and the new daemon of an upgrade): a lock,
	// pidfile and control socket, the umask of daemon.umask, the log file
	// by default, and fds 1 and 2 onto the log. Otherwise "zend run": the
	// log on stderr by default, sd_notify.
	daemon bool
	// stderr receives the log when there is no log file.
	stderr io.Writer
	// handoff is what the daemon this one upgrades passed on; nil unless
	// this is the new daemon of an upgrade.
	handoff *handoff
	// exe is the binary an upgrade starts (daemon only).
	exe string
	// readyFD is the readiness pipe (daemon only; -1 otherwise).
	readyFD int
	// ready reports that initialisation is complete.
	ready func(in *instance)
	// fail reports why initialisation failed and returns the error to
	// return.
	fail func(err error) error
}

// handoff is what a running daemon passes to the new daemon of an
// upgrade, by descriptor, so that the new one needs no privilege to take
// over: the listening sockets (through envListenFDs), the metrics
// listener, the control socket, the lock and the pidfile.
type handoff struct {
	lockFD, pidfileFD, controlFD int
	// oldPid is the daemon this one upgrades.
	oldPid int
	// pidfile is the pidfile the descriptors belong to: the one the old
	// daemon started with (daemon.pidfile needs a restart).
	pidfile string
}

// Descriptors an upgrade passes, by environment variable.
const (
	envUpgrade   = "_ZEND_UPGRADE"    // the pid of the daemon this one upgrades
	envLockFD    = "_ZEND_LOCK_FD"    // the lock, flock'ed by the old daemon
	envPidfileFD = "_ZEND_PIDFILE_FD" // the pidfile, open read-write
	envControlFD = "_ZEND_CONTROL_FD" // the control socket's listener
	envPidfile   = "_ZEND_PIDFILE"    // the pidfile's path, as the old daemon started
	envMetricsFD = "_ZEND_METRICS_FD" // the metrics listener
	envExe       = "_ZEND_EXE"        // the binary's path as the operator ran it
	// envListenAddrs names the server.listen entries of the listening
	// sockets an upgrade passes (envListenFDs), in the same order; unset
	// when they are systemd's.
	envListenAddrs = "_ZEND_LISTEN_ADDRS"
)

// takeHandoff reads (and removes) the upgrade variables: nil when this
// process was not started by an upgrade.
func takeHandoff() (*handoff, error) {
	v := os.Getenv(envUpgrade)
	os.Unsetenv(envUpgrade)
	if v == "" {
		return nil, nil
	}
	old, err := strconv.Atoi(v)
	if err != nil || old < 2 {
		return nil, fmt.Errorf("upgrade: %s=%q is not the pid of a running zend", envUpgrade, v)
	}
	h := &handoff{oldPid: old, pidfile: os.Getenv(envPidfile)}
	os.Unsetenv(envPidfile)
	if h.pidfile == "" {
		return nil, fmt.Errorf("upgrade: %s missing: this daemon was not started by a running zend", envPidfile)
	}
	for _, v := range []struct {
		name string
		fd   *int
	}{{envLockFD, &h.lockFD}, {envPidfileFD, &h.pidfileFD}, {envControlFD, &h.controlFD}} {
		fd, err := strconv.Atoi(os.Getenv(v.name))
		os.Unsetenv(v.name)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("upgrade: %s missing: this daemon was not started by a running zend", v.name)
		}
		*v.fd = fd
	}
	return h, nil
}

// handoffFDs returns the descriptors named by the environment that the
// daemon stage must keep open.
func handoffFDs() []int {
	var fds []int
	for _, name := range []string{envLockFD, envPidfileFD, envControlFD, envMetricsFD} {
		if fd, err := strconv.Atoi(os.Getenv(name)); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds
}

// assemble is the one path from a configuration source to a serving
// instance, whatever started it: load the configuration; take the lock
// (daemon); bind the listeners, metrics and control sockets and write the
// pidfile as the user that started zend; drop to daemon.user; open the log
// as that user; serve; report ready; run the signal loop until the
// instance stops. It returns nil after a shutdown, or the error that kept
// it from starting (already passed to l.fail) or from serving.
func assemble(ctx context.Context, src config.Source, l launch) (err error) {
	// The lock, pidfile and sockets are root's; no other process of the
	// daemon's user may take them.
	if err := undumpable(); err != nil {
		return l.fail(fmt.Errorf("PR_SET_DUMPABLE: %w", err))
	}
	if h := l.handoff; h != nil && os.Geteuid() != 0 {
		// (A daemon running as root: nobody else could trace it.)
		fds := append(handoffFDs(), h.lockFD, h.pidfileFD, h.controlFD, l.readyFD)
		for _, s := range strings.Split(os.Getenv(envListenFDs), ",") {
			if fd, err := strconv.Atoi(s); err == nil {
				fds = append(fds, fd)
			}
		}
		if err := checkNoIntruder(fds, h.oldPid); err != nil {
			return l.fail(err)
		}
	}
	cfg, err := src.Load()
	if err != nil {
		return l.fail(err)
	}
	if cfg.Path != "" {
		src.Path = cfg.Path // absolute: a reload after chdir / finds it
	}
	// Root started it: root now, or the daemon.user root drops (or, for
	// the new daemon of an upgrade, dropped) it to.
	rootStarted := os.Geteuid() == 0 || cfg.Daemon.User != ""
	defLog := ""
	if l.daemon {
		defLog = config.DefaultLogFile
		umask, _ := config.ParseUmask(cfg.Daemon.Umask)
		unix.Umask(umask) // step 10
	}
	logFile := logsink.FilePath(cfg, defLog)
	sink := logsink.New(cfg, logFile, l.stderr, l.daemon)
	defer sink.Close()
	log := sink.Logger()
	fail := func(err error) error {
		sink.Flush()
		return l.fail(err)
	}

	// What start checked, every start-up checks: run, and the new daemon
	// of an upgrade, too.
	if err := Preflight(cfg, l.daemon); err != nil {
		return fail(err)
	}
	cred, err := lookupCredential(cfg.Daemon.User, cfg.Daemon.Group)
	if err != nil {
		return fail(err)
	}
	switch {
	case cred == nil:
	case cred.uid == 0:
		log.Warn("daemon.user is root: zend keeps every privilege (its log then goes only where only root can write)", "user", cfg.Daemon.User)
		cred = nil
	case os.Geteuid() == 0:
	case os.Geteuid() == cred.uid:
		cred = nil // already that user: started by it, or an upgrade
	default:
		log.Warn("daemon.user ignored: not started as root", "user", cfg.Daemon.User, "uid", os.Geteuid())
		cred = nil
	}
	if logFile != "" && !config.IsLogService(logFile) {
		if err := prepareLogDir(filepath.Dir(logFile), cred); err != nil {
			return fail(fmt.Errorf("log.file %s: %w", logFile, err))
		}
	}

	// Step 12, the lock: before anything is bound, so a second start
	// fails on it and not on a busy port.
	pidfilePath := cfg.Abs(cfg.Daemon.Pidfile)
	var (
		pf  *Pidfile
		ctl *control
	)
	if l.daemon {
		if h := l.handoff; h != nil {
			if h.pidfile != pidfilePath {
				log.Warn("changed key needs a restart, keeping the running value", "change", fmt.Sprintf("daemon.pidfile: %s -> %s", h.pidfile, pidfilePath))
				pidfilePath = h.pidfile
			}
			pf = InheritPidfile(pidfilePath, h.lockFD, h.pidfileFD)
			if ctl, err = controlFrom(h.controlFD, ControlPath(pidfilePath)); err != nil {
				pf.Close()
				return fail(err)
			}
		} else if pf, err = AcquirePidfile(pidfilePath); err != nil {
			return fail(err)
		}
	}
	var in *instance
	defer func() {
		// A daemon that failed to start, or stopped, empties (and where it
		// may, removes) the pidfile when it names this process; one that
		// handed over to the new daemon of an upgrade leaves it alone.
		if pf != nil && (in == nil || !in.handedOver()) {
			if err := pf.Release(os.Getpid()); err != nil {
				log.Warn("cannot empty the pidfile", "err", err.Error())
			}
		}
	}()

	svc, err := NewService(cfg, log)
	if err != nil {
		return fail(err)
	}
	handed, err := listenersFrom(inheritedFiles())
	if err != nil {
		return fail(err)
	}
	addrs := strings.Split(os.Getenv(envListenAddrs), ",")
	os.Unsetenv(envListenAddrs)
	if l.handoff != nil && len(addrs) == len(handed) && len(handed) > 0 && addrs[0] != "" {
		// The upgraded daemon's own sockets: still server.listen's.
		own := make(map[string]net.Listener, len(handed))
		for i, ln := range handed {
			own[addrs[i]] = ln
		}
		svc.Adopt(own)
	} else {
		svc.UseListeners(handed)
	}
	if err := svc.Open(); err != nil { // bind before dropping privileges
		return fail(err)
	}
	shutdown := func() { svc.Shutdown(context.Background()) }
	ms, err := listenMetrics(cfg.Metrics.Listen)
	if err != nil {
		shutdown()
		return fail(err)
	}
	defer ms.close()
	if l.daemon && l.handoff == nil {
		if ctl, err = listenControl(ControlPath(pidfilePath)); err != nil {
			shutdown()
			return fail(err)
		}
		var owner *[2]int
		if cred != nil {
			owner = &[2]int{cred.uid, cred.gid}
		}
		if err := pf.Publish(os.Getpid(), owner); err != nil {
			ctl.close()
			shutdown()
			return fail(err)
		}
	}
	defer func() { ctl.close() }()

	if cred != nil { // step 13
		note, err := cred.drop()
		if err != nil {
			shutdown()
			return fail(err)
		}
		log.Info("dropped privileges", "user", cred.user, "uid", cred.uid, "group", cred.group, "gid", cred.gid)
		if note != "" {
			log.Warn("privileges: " + note)
		}
	}
	// The log is opened by the user that serves: a link planted in its
	// folder can only lead where that user may write anyway.
	if err := sink.Open(); err != nil {
		shutdown()
		return fail(fmt.Errorf("log.file %s (opened as uid %d): %w", logFile, os.Geteuid(), err))
	}
	if l.daemon && os.Chdir("/") != nil { // step 11
		shutdown()
		return fail(errors.New("chdir /: failed"))
	}

	in = &instance{src: src, defLog: defLog, sink: sink, log: log, svc: svc, started: time.Now(), rootStarted: rootStarted}
	in.setConfig(cfg, cfg, nil)
	if l.handoff != nil {
		in.upgradeRes = UpgradeResult{Gen: 1, OK: true, NewPid: os.Getpid(), At: in.started}
		in.orphaned = watchExit(l.handoff.oldPid)
	}
	sigc, stopSignals := notifySignals()
	defer stopSignals()
	svc.Start()
	if ctl != nil {
		go ctl.serve(in)
	}
	ms.serve(in, log)
	if cfg.Path == "" {
		log.Info("no configuration file, running on embedded defaults", "missing", config.DefaultPath)
	} else {
		log.Info("configuration loaded", "file", cfg.Path)
	}
	if l.daemon {
		in.upgrader = &upgrader{exe: l.exe, src: src, pf: pf, ctl: ctl, ms: ms, owner: pf.owner()}
		log.Info("zend daemon ready", "pid", os.Getpid(), "engine", svc.Engine(),
			"addrs", fmt.Sprint(svc.Addrs()), "pidfile", pidfilePath, "user", userName(cred))
	} else {
		in.notify = sdNotify
		log.Info("zend ready", "pid", os.Getpid(), "engine", svc.Engine(),
			"addrs", fmt.Sprint(svc.Addrs()), "user", userName(cred))
	}
	l.ready(in)

	return in.loop(ctx, sigc)
}

// prepareLogDir readies the log folder before the privilege drop. With a
// user to drop to (cred), a missing folder whose parent only root can
// change is created and given to that user, who creates and opens the
// file itself after the drop; root touches nothing inside an existing
// folder. Without a drop, a process running as root writes the log only
// in a folder only root can change (created 0750 when missing), since it
// would otherwise follow whatever link another user plants there.
func prepareLogDir(dir string, cred *credential) error {
	if cred == nil {
		if os.Geteuid() != 0 {
			return nil
		}
		d, err := trust.OpenDir(dir, 0o750)
		if err != nil {
			return fmt.Errorf("log folder: %w (zend running as root writes its log only where only root can write: set daemon.user, or choose another folder)", err)
		}
		d.Close()
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err == nil {
		return othersCannotWrite(dir, &st, cred)
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("log folder: %w", err)
	}
	if _, err := trust.ResolveTrusted(filepath.Dir(dir), 0); err != nil {
		return nil // not root's to create: the user creates it after the drop
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create log folder: %w", err)
	}
	// The mode before the owner: afterwards it would need CAP_FOWNER.
	if err := os.Chmod(dir, 0o750); err != nil {
		return err
	}
	if err := os.Lchown(dir, cred.uid, cred.gid); err != nil {
		return fmt.Errorf("give the log folder to %s: %w", cred.user, err)
	}
	return nil
}

// othersCannotWrite checks that only root and cred's user and group can
// create files in the log folder: anyone else could plant the log file
// (their own, or a FIFO) before the daemon opens it.
func othersCannotWrite(dir string, st *unix.Stat_t, cred *credential) error {
	switch {
	case st.Mode&0o002 != 0:
		return fmt.Errorf("log folder %s (mode %04o): %w: every user can create files in it; choose a folder only root and %s can write", dir, st.Mode&0o7777, trust.ErrUntrusted, cred.user)
	case st.Mode&0o020 != 0 && st.Gid != 0 && int(st.Gid) != cred.gid:
		return fmt.Errorf("log folder %s (mode %04o, gid %d): %w: group %d can create files in it; choose a folder only root and %s can write", dir, st.Mode&0o7777, st.Gid, trust.ErrUntrusted, st.Gid, cred.user)
	case st.Uid != 0 && int(st.Uid) != cred.uid:
		return fmt.Errorf("log folder %s: %w: owned by uid %d, neither root nor %s", dir, trust.ErrUntrusted, st.Uid, cred.user)
	}
	return nil
}

// controlFrom serves the control socket listener a running daemon passed
// on.
func controlFrom(fd int, path string) (*control, error) {
	f := os.NewFile(uintptr(fd), "control")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("upgrade: control socket: %w", err)
	}
	ul, ok := ln.(*net.UnixListener)
	if !ok {
		ln.Close()
		return nil, errors.New("upgrade: control socket: not a unix socket")
	}
	ul.SetUnlinkOnClose(false)
	if err := claimControl(ul); err != nil { // the kernel's proof names this daemon now
		ul.Close()
		return nil, fmt.Errorf("upgrade: control socket: %w", err)
	}
	return &control{ln: ul, path: path}, nil
}
