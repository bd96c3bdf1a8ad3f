package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"zend/config"
	"zend/daemon/logsink"
	"zend/daemon/trust"
)

// instance is one running zend, foreground or daemon: its configuration
// source, log, service and lifecycle. One goroutine (loop) owns it; every
// signal arrives through one channel.
type instance struct {
	src     config.Source
	defLog  string // log file when log.file is unset: "" (stderr) or DefaultLogFile
	sink    *logsink.Sink
	log     *slog.Logger
	svc     *Service
	started time.Time

	// notify tells systemd about state changes (sd_notify); nil when
	// not under systemd's Type=notify.
	notify func(states ...string)

	// upgrader starts a successor on SIGUSR2; nil under "zend run".
	upgrader *upgrader
	// orphaned is closed when the daemon this one upgraded has exited;
	// nil unless started by an upgrade.
	orphaned <-chan struct{}

	mu         sync.Mutex     // guards what follows, read by the control socket and metrics
	cfg        *config.Config // in force
	requested  *config.Config // as the file was last loaded
	pending    []string       // restart-only keys that differ between the two
	reload     ReloadResult
	reloadOK   int
	upgradeRes UpgradeResult
	handed     bool // an upgrade handed the lock and pidfile on

	// rootStarted: root started this daemon (it runs as root, or as
	// the daemon.user root dropped it to): a reload takes only a
	// configuration only root can change, as start does.
	rootStarted bool
}

// config returns the configuration in force.
func (in *instance) config() *config.Config {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg
}

// setConfig records the configuration in force, the one requested, and
// the keys that wait for a restart.
func (in *instance) setConfig(inForce, requested *config.Config, pending []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cfg, in.requested, in.pending = inForce, requested, pending
}

// handedOver reports whether an upgrade gave the lock and pidfile to a new
// daemon.
func (in *instance) handedOver() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.handed
}

// reloadCounts returns how many reloads were applied and refused.
func (in *instance) reloadCounts() (ok, failed int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.reloadOK, in.reload.Gen - in.reloadOK
}

// statusLine is the STATUS= text for systemd.
func (in *instance) statusLine() string {
	st := in.svc.Stats()
	line := fmt.Sprintf("serving %s on %v, %d connections open", in.svc.Engine(), in.svc.Addrs(), st.Open)
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.pending) > 0 {
		line += fmt.Sprintf("; %d changed keys wait for a restart", len(in.pending))
	}
	return line
}

func (in *instance) tell(states ...string) {
	if in.notify != nil {
		in.notify(states...)
	}
}

// ReloadResult is the outcome of the last reload.
type ReloadResult struct {
	Gen   int       `json:"gen"` // reloads tried since start
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at,omitzero"`
}

// signals are the signals an instance handles.
var signals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}

// loop serves until ctx ends or SIGTERM/SIGINT, then drains for at most
// limits.shutdown_timeout; a second SIGTERM/SIGINT ends the drain at once.
// SIGHUP reloads, SIGUSR1 reopens the log file. It returns nil after a
// shutdown, or the error of a listener that failed.
func (in *instance) loop(ctx context.Context, sigc <-chan os.Signal) error {
	var (
		stopping  bool
		forceStop context.CancelFunc = func() {}
		drained                      = make(chan struct{})
		serveErr  error
	)
	stop := func(why string) {
		if stopping {
			in.log.Warn("second stop request, closing open conversations now", "signal", why)
			forceStop()
			return
		}
		stopping = true
		if in.upgrader != nil && in.upgrader.busy {
			in.log.Warn("stopping during an upgrade: the new daemon is stopped too", "new_pid", in.upgrader.child)
			in.upgrader.abandon()
		}
		timeout := in.config().Limits.ShutdownTimeout.D()
		in.tell(sdStopping, fmt.Sprintf("STATUS=draining %d conversations (at most %v)", in.svc.Stats().Open, timeout))
		in.log.Info("shutting down", "reason", why, "open", in.svc.Stats().Open, "drain_timeout", timeout.String())
		var dctx context.Context
		dctx, forceStop = context.WithTimeout(context.Background(), timeout)
		go func() {
			start := time.Now()
			res, _ := in.svc.Shutdown(dctx)
			in.log.Info("stopped", "finished", res.Finished, "cut_off", res.Cut, "took", time.Since(start).Round(time.Millisecond).String())
			close(drained)
		}()
	}
	done := ctx.Done()
	var upgraded <-chan upgradeOutcome
	var watchdog <-chan time.Time
	if iv := sdWatchdogInterval(); iv > 0 && in.notify != nil {
		t := time.NewTicker(iv / 2) // systemd's advice: ping at half the interval
		defer t.Stop()
		watchdog = t.C
		in.log.Info("systemd watchdog enabled", "interval", iv.String())
	}
	for {
		select {
		case <-watchdog:
			in.tell(sdWatchdog)
		case sig := <-sigc:
			switch sig {
			case syscall.SIGHUP:
				if !stopping {
					in.doReload()
				}
			case syscall.SIGUSR2:
				switch {
				case in.upgrader == nil:
					in.log.Warn("SIGUSR2 (upgrade) needs a daemon started with zend start; under zend run (supervisord, zend-notify.service, a container) restart instead")
				case stopping || in.upgrader.busy:
					in.log.Warn("upgrade already under way or stopping, SIGUSR2 ignored")
				default:
					in.upgrader.busy = true
					in.log.Info("upgrade: starting the binary on disk", "path", in.upgrader.exe)
					upgraded = in.upgrader.start(in)
				}
			case syscall.SIGUSR1:
				// A failure is reported by the sink itself, into the
				// file still open.
				// syslog and the journal are reconnected; a failure
				// is logged through the next connection that works.
				if err := in.sink.Reopen(); err == nil {
					in.log.Info("log file reopened", "file", in.sink.Path())
				} else if !in.sink.OnFile() {
					in.log.Error("cannot reconnect to the log service", "target", in.sink.Path(), "err", err.Error())
				}
			default:
				stop(sig.String())
			}
		case o := <-upgraded:
			upgraded = nil
			if stopping && o.err == nil {
				o.err = errors.New("this daemon was told to stop during the upgrade: the new one was stopped")
			}
			if in.upgradeDone(o) {
				stop("upgraded to pid " + strconv.Itoa(o.pid))
			}
		case <-in.orphaned:
			// The daemon this one upgraded is gone: whether or not it
			// handed over, this one serves now, and the pidfile must say
			// so.
			in.orphaned = nil
			in.adoptPidfile()
		case <-done:
			done = nil
			stop("context ended")
		case err := <-in.svc.Err():
			in.log.Error("listener failed", "err", err.Error())
			serveErr = err
			stop("listener failed")
		case <-drained:
			forceStop()
			return serveErr
		}
	}
}

// doReload loads the configuration again and applies it as one
// transaction: when anything is wrong the running configuration stays and
// the error is logged (with file and line) and kept for "zend reload".
func (in *instance) doReload() {
	in.tell(sdReloading, sdMonotonic())
	err := in.apply()
	if err != nil {
		in.tell(sdReady, "STATUS=reload failed, running the previous configuration: "+err.Error())
	} else {
		in.tell(sdReady, "STATUS="+in.statusLine())
	}
	in.mu.Lock()
	in.reload.Gen++
	in.reload.At = time.Now()
	in.reload.OK = err == nil
	if err == nil {
		in.reloadOK++
	}
	in.reload.Error = ""
	if err != nil {
		in.reload.Error = err.Error()
	}
	in.mu.Unlock()
	if err != nil {
		in.log.Error("reload failed, keeping the running configuration", "err", err.Error())
		return
	}
	cfg := in.config()
	in.log.Info("configuration reloaded", "file", cfg.Path, "answers", len(cfg.Answers)+3, "max_connections", cfg.Limits.MaxConnections)
}

// apply loads the configuration again and puts in force what a running
// zend can change; restart-only keys keep their running value and are
// logged, at every reload, until a restart.
func (in *instance) apply() error {
	requested, err := in.src.Load()
	if err != nil {
		return err
	}
	if in.rootStarted && requested.Path != "" {
		// The rule start applies (Preflight), held on every reload: and
		// only root's files count now, not those of the user the daemon
		// dropped to (seen: a group-writable file was reloaded).
		if err := configRootOnly(requested.Path, trust.IsRoot); err != nil {
			return err
		}
	}
	eff, pending := config.InForce(in.config(), requested, in.svc.Handed())
	if err := in.svc.Reload(eff); err != nil {
		return err
	}
	in.sink.SetFormat(eff.Log)
	in.setConfig(eff, requested, pending)
	for _, p := range pending {
		in.log.Warn("changed key needs a restart, keeping the running value", "change", p)
	}
	return nil
}

// notifySignals subscribes to the instance's signals.
func notifySignals() (chan os.Signal, func()) {
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, signals...)
	return sigc, func() { signal.Stop(sigc) }
}

// adoptPidfile makes the pidfile name this daemon, once the daemon it
// upgraded has exited: that one writes the new pid before it drains, but
// one killed between the new daemon's report and its hand-over could not.
func (in *instance) adoptPidfile() {
	pf := in.upgrader.pf
	if got, err := readPidFrom(pf.file); err == nil && got == os.Getpid() {
		return
	}
	if err := pf.Rewrite(os.Getpid()); err != nil {
		in.log.Error("the daemon this one upgraded exited without handing over, and the pidfile cannot be rewritten", "err", err.Error())
		return
	}
	in.log.Warn("the daemon this one upgraded exited without handing over: the pidfile names this one now")
}
