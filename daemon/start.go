package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	godaemon "github.com/sevlyar/go-daemon"
	"golang.org/x/sys/unix"

	"zend/config"
)

// The stages of "zend start". Go cannot fork without exec, so the classic
// double fork is two re-executions of the same binary with the same
// arguments; main runs again in each, and this marker says which stage it
// is. go-daemon's own marker (_GO_DAEMON) is shared by every go-daemon
// program, so a zend started by another go-daemon program would believe it
// was reborn: zend trusts only its own marker and strips both from what it
// passes on.
const (
	envStage   = "_ZEND_STAGE"    // "1": after the first fork; "2": the daemon
	envReadyFD = "_ZEND_READY_FD" // the readiness pipe's write end
)

// Messages on the readiness pipe, one per line.
const (
	msgPid   = "ZEND-PID "   // the daemon's pid, sent first
	msgReady = "ZEND-READY"  // initialisation is complete
	msgError = "ZEND-ERROR " // why it failed
)

// StartOptions configure Start.
type StartOptions struct {
	// Source is where the configuration comes from.
	Source config.Source
	// Args are the command line to run again in each stage (os.Args).
	Args []string
	// Stdout receives the success line, Stderr the reasons of a failure.
	Stdout, Stderr io.Writer
	// ReadyTimeout bounds the wait for the daemon's report (default 30 s).
	ReadyTimeout time.Duration
}

// Start runs "zend start". In the original process it checks the
// configuration, forks the daemon (twice, through go-daemon and a second
// re-execution) and returns only when the daemon reports that it is
// serving (nil) or why it failed (an error; no process and no pidfile are
// left behind). In the re-executed stages it does the work of that stage
// and never returns to the caller's command code with an error it should
// print: the daemon stage returns when the daemon stops.
func Start(ctx context.Context, opts StartOptions) error {
	switch os.Getenv(envStage) {
	case "1":
		if !godaemon.WasReborn() {
			return errors.New("stage marker without go-daemon's: refusing to run as a daemon stage")
		}
		os.Exit(middleStage())
	case "2":
		return daemonStage(ctx, opts)
	}
	return startParent(opts)
}

// envClean marks a process that exec'ed itself with an empty signal mask.
const envClean = "_ZEND_CLEAN_MASK"

// cleanExec makes the starter begin again with an empty signal mask (step
// 3): Go starts every thread from the mask the process started with, and
// every process it forks inherits it, so a mask that the caller blocked
// (SIGUSR1 in a shell's trap, for example) would reach the daemon. An exec
// from a thread whose mask was emptied resets it at the root. SIGHUP and
// SIGINT, which Go keeps ignored when the caller ignored them (nohup), are
// handled first so that exec resets them to the default (step 2).
func cleanExec() error {
	if os.Getenv(envClean) == "1" {
		os.Unsetenv(envClean)
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGINT)
	runtime.LockOSThread() // the exec happens on this thread, with its mask
	if err := clearSignalMask(); err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, append(os.Environ(), envClean+"=1"))
}

// startParent is the original process: steps 1-5 and 15.
func startParent(opts StartOptions) error {
	if err := cleanExec(); err != nil {
		return fmt.Errorf("reset signal mask: %w", err)
	}
	cfg, err := opts.Source.Load()
	if err != nil {
		return err
	}
	pidfile := cfg.Abs(cfg.Daemon.Pidfile)
	switch state, pid, err := CheckPidfile(pidfile); {
	case err != nil:
		return err
	case state == Running:
		return fmt.Errorf("already running (pid %d, pidfile %s)", pid, pidfile)
	}
	if err := Preflight(cfg, true); err != nil {
		return err
	}
	exe, err := invokedPath(os.Args[0])
	if err != nil {
		return fmt.Errorf("find the binary for upgrades: %w", err)
	}

	// Sockets from systemd (zend.socket) are passed on on purpose, above
	// the descriptors go-daemon sets up.
	handed, handedEnv, err := passInherited(inheritedFiles())
	if err != nil {
		return err
	}
	// Step 1: nothing else the caller left open (other than 0-2) may reach
	// the daemon: mark it close-on-exec.
	markInheritedCloexec(handed...)
	// Step 2: handlers. SIGHUP and SIGINT ignored by the caller (nohup)
	// would stay ignored across exec; handling them here makes exec reset
	// them to the default. Every other signal Go handles is reset by exec.
	// Step 3 was done by cleanExec.
	hold := make(chan os.Signal, 1)
	signal.Notify(hold, syscall.SIGHUP, syscall.SIGINT)
	defer signal.Stop(hold)

	// Step 14's channel, created before the first fork.
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("readiness pipe: %w", err)
	}
	defer r.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil {
		w.Close()
		return fmt.Errorf("readiness pipe: %w", err)
	}

	// Steps 4-6: a sanitised environment, fork (re-exec) and setsid, done
	// by go-daemon.
	env := sanitizeEnv(os.Environ())
	env = append(env, envStage+"=1", envReadyFD+"="+strconv.Itoa(int(w.Fd())), envExe+"="+exe)
	if handedEnv != "" {
		env = append(env, envListenFDs+"="+handedEnv)
	}
	// go-daemon decides parent or child by its marker alone: one inherited
	// from another go-daemon program must not make this process the child.
	os.Unsetenv(godaemon.MARK_NAME)
	dctx := &godaemon.Context{Env: env, Args: opts.Args}
	child, err := dctx.Reborn()
	w.Close()
	if err = rebornErr(child, err); err != nil {
		return fmt.Errorf("fork: %w", err)
	}
	go child.Wait() // reap the first child when it exits (step 8)

	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	pid, err := awaitReady(r, timeout)
	if err != nil {
		if pid > 0 && errors.Is(err, errReadyTimeout) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if pid > 0 {
			waitGone(pid, 10*time.Second) // it exits right after its report
		}
		// A daemon that failed after dropping privileges could only
		// empty its pidfile: nothing may be left behind.
		if st, _, cerr := CheckPidfile(pidfile); cerr == nil && st != Running {
			removeLeftovers(pidfile)
		}
		return err
	}
	fmt.Fprintf(opts.Stdout, "zend started (pid %d)\n", pid)
	return nil
}

var errReadyTimeout = errors.New("the daemon did not report ready")

// awaitReady reads the readiness pipe until the daemon reports ready, an
// error, or closes the pipe without a word (it died: whatever it printed,
// a runtime panic for example, is the reason).
func awaitReady(r *os.File, timeout time.Duration) (pid int, err error) {
	r.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(r)
	var other []string
	for {
		line, rerr := br.ReadString('\n')
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, msgPid):
			pid, _ = strconv.Atoi(strings.TrimPrefix(line, msgPid))
		case line == msgReady:
			// The daemon closes its end right after: wait for that, so
			// that nobody sees the pipe still open in a daemon reported
			// ready (daemon(7) step 1).
			r.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, br)
			return pid, nil
		case strings.HasPrefix(line, msgError):
			return pid, errors.New(strings.TrimPrefix(line, msgError))
		case line != "":
			other = append(other, line)
		}
		if rerr != nil {
			if errors.Is(rerr, os.ErrDeadlineExceeded) {
				return pid, fmt.Errorf("%w within %v", errReadyTimeout, timeout)
			}
			msg := "the daemon exited during startup without a reason"
			if len(other) > 0 {
				msg = "the daemon exited during startup: " + strings.Join(other, "\n")
			}
			return pid, errors.New(msg)
		}
	}
}

// invokedPath returns the binary as the operator ran it (argv0), made
// absolute through PATH or the working directory but not through links:
// after "ln -sf zend-v2 /usr/sbin/zend", an upgrade must run what
// /usr/sbin/zend names then, not the file it named at start.
func invokedPath(argv0 string) (string, error) {
	p := argv0
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return os.Executable()
		}
		p = lp
	}
	return filepath.Abs(p)
}

// sanitizeEnv keeps what zend needs: its own ZEND_* settings, TZ, the Go
// runtime's settings (goRuntimeVar), and a fixed PATH; go-daemon's and
// zend's stage markers are dropped.
func sanitizeEnv(environ []string) []string {
	out := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ZEND_") || k == "TZ" || goRuntimeVar[k] {
			out = append(out, kv)
		}
	}
	return out
}

// goRuntimeVar are the Go runtime's own settings, kept through the
// daemonisation: an operator's GOMAXPROCS or GOMEMLIMIT (a container's
// limits), GOGC, GODEBUG, GOTRACEBACK, and GORACE for a race-detector
// build.
var goRuntimeVar = map[string]bool{"GOMAXPROCS": true, "GOMEMLIMIT": true, "GOGC": true,
	"GODEBUG": true, "GOTRACEBACK": true, "GORACE": true}

// markInheritedCloexec marks every descriptor above 2 that is not
// close-on-exec (so was inherited, not opened by Go) close-on-exec, except
// keep.
func markInheritedCloexec(keep ...int) {
	for _, fd := range openFds() {
		if fd <= 2 || slices.Contains(keep, fd) {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC)
		}
	}
}

// closeInherited closes every descriptor above 2 that is not
// close-on-exec, except keep: what an exec passed on without meaning to.
func closeInherited(keep ...int) {
	for _, fd := range openFds() {
		if fd <= 2 || slices.Contains(keep, fd) {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

// openFds lists the process's open descriptors.
func openFds() []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fdsWithoutProc()
	}
	var fds []int
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds
}

// readyPipe returns the readiness pipe named by the environment.
func readyPipe() *os.File {
	fd, err := strconv.Atoi(os.Getenv(envReadyFD))
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "readiness-pipe")
}

// rebornErr is the error of go-daemon's Reborn in the parent that means
// the start failed. Reborn writes the context to the child's stdin, then
// "\n\n" in a second write; the child stops reading once it has decoded
// the context and puts /dev/null on fd 0, so that second write can fail
// with EPIPE while the child goes on (seen under load: "fork: write |1:
// broken pipe", and a daemon left running that start said had failed).
// With a child started, EPIPE is not a failure: the readiness pipe says
// whether the daemon came up.
func rebornErr(child *os.Process, err error) error {
	if child != nil && errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

// middleStage is the first child, a session leader since go-daemon's
// setsid (step 6): it forks again (step 7) so that the daemon is not a
// session leader and can never acquire a terminal, then exits (step 8).
func middleStage() int {
	ready := readyPipe()
	if ready == nil {
		fmt.Fprintln(os.Stderr, "zend: stage 1 without a readiness pipe")
		return 1
	}
	fail := func(err error) int {
		fmt.Fprintf(ready, "%s%v\n", msgError, err)
		return 1
	}
	// go-daemon's child half: reads the context from stdin, puts /dev/null
	// on fd 0.
	if _, err := (&godaemon.Context{}).Reborn(); err != nil {
		return fail(fmt.Errorf("fork: %w", err))
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != envStage && k != envReadyFD && k != envListenFDs && k != godaemon.MARK_NAME {
			env = append(env, kv)
		}
	}
	env = append(env, envStage+"=2", envReadyFD+"=3")
	// Sockets from systemd follow the readiness pipe, from fd 4.
	extra := []*os.File{ready}
	if v := os.Getenv(envListenFDs); v != "" {
		var fds []string
		for _, s := range strings.Split(v, ",") {
			if fd, err := strconv.Atoi(s); err == nil {
				extra = append(extra, os.NewFile(uintptr(fd), "systemd-socket"))
				fds = append(fds, strconv.Itoa(2+len(extra)))
			}
		}
		env = append(env, envListenFDs+"="+strings.Join(fds, ","))
	}
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   os.Args,
		Env:    env,
		Stdin:  null,
		Stdout: null,
		// Until the daemon has its log, what it writes to stderr (a
		// runtime panic) goes to the process that ran "zend start".
		Stderr:     ready,
		ExtraFiles: extra,
	}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("second fork: %w", err))
	}
	return 0
}

// daemonStage is the daemon: steps 1, 3 and 9-14 around assemble, which
// serves until the daemon stops.
func daemonStage(ctx context.Context, opts StartOptions) error {
	ready := readyPipe()
	if ready == nil {
		return errors.New("daemon stage without a readiness pipe")
	}
	keep := append([]int{int(ready.Fd())}, handoffFDs()...)
	for _, s := range strings.Split(os.Getenv(envListenFDs), ",") {
		if fd, err := strconv.Atoi(s); err == nil {
			keep = append(keep, fd)
		}
	}
	closeInherited(keep...) // step 1
	// Children (an upgrade) must start afresh, not as a stage.
	os.Unsetenv(envStage)
	os.Unsetenv(envReadyFD)
	fmt.Fprintf(ready, "%s%d\n", msgPid, os.Getpid())
	fail := func(err error) error { // step 14, failure
		fmt.Fprintf(ready, "%s%v\n", msgError, err)
		ready.Close()
		return &silentError{err}
	}
	h, err := takeHandoff()
	if err != nil {
		return fail(err)
	}
	exe := os.Getenv(envExe) // where an upgrade will look for the new binary
	if exe == "" {
		exe, _ = os.Executable()
	}
	err = assemble(ctx, opts.Source, launch{
		daemon:  true,
		stderr:  os.Stderr, // the readiness pipe until the log is open
		handoff: h,
		exe:     exe,
		readyFD: int(ready.Fd()),
		ready: func(in *instance) {
			fmt.Fprintln(ready, msgReady) // step 14: initialisation is complete
			ready.Close()
			if !in.sink.OnFile() {
				// log.file = "-", "syslog" or "journal": stderr was the
				// readiness pipe, which nobody reads any more (step 9).
				if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
					unix.Dup2(int(null.Fd()), 1)
					unix.Dup2(int(null.Fd()), 2)
					null.Close()
				}
			}
		},
		fail: fail,
	})
	if err != nil && !IsReported(err) {
		return &silentError{err} // logged by the instance
	}
	return err
}

func userName(c *credential) string {
	if c != nil {
		return c.user
	}
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Geteuid())
}

// silentError is an error already reported (to the starter or the log);
// the daemon exits 1 without printing it again.
type silentError struct{ err error }

func (e *silentError) Error() string { return e.err.Error() }
func (e *silentError) Unwrap() error { return e.err }

// IsReported reports whether err was already reported by the daemon.
func IsReported(err error) bool {
	var s *silentError
	return errors.As(err, &s)
}
