package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"zend/config"
)

// instance is one running zend, foreground or daemon: its configuration
// source, log, service and lifecycle. One goroutine (loop) owns it; every
// signal arrives through one channel.
type instance struct {
	src     config.Source
	cfg     *config.Config
	defLog  string // log file when log.file is unset: "" (stderr) or DefaultLogFile
	sink    *logSink
	log     *slog.Logger
	svc     *Service
	started time.Time

	// notify tells systemd about state changes (sd_notify); nil when
	// not under systemd's Type=notify.
	notify func(states ...string)

	// upgrader starts a successor on SIGUSR2; nil under "zend run".
	upgrader *upgrader

	mu         sync.Mutex // guards reload, upgrade and counts, read by the control socket
	reload     ReloadResult
	reloadOK   int
	upgradeRes UpgradeResult
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
	return fmt.Sprintf("serving %s on %v, %d connections open", in.cfg.Server.Engine, in.svc.Addrs(), st.Open)
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
		timeout := in.cfg.Limits.ShutdownTimeout.D()
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
					in.log.Warn("SIGUSR2 (upgrade) needs a daemon started with zend start; under systemd use zend.socket and restart")
				case stopping || in.upgrader.busy:
					in.log.Warn("upgrade already under way or stopping, SIGUSR2 ignored")
				default:
					in.upgrader.busy = true
					in.log.Info("upgrade: starting the binary on disk", "path", in.upgrader.exe)
					upgraded = in.upgrader.start(in)
				}
			case syscall.SIGUSR1:
				if err := in.sink.Reopen(); err != nil {
					in.log.Error("cannot reopen the log file", "err", err.Error())
				} else {
					in.log.Info("log file reopened", "file", in.sink.Path())
				}
			default:
				stop(sig.String())
			}
		case o := <-upgraded:
			upgraded = nil
			if in.upgradeDone(o) {
				stop("upgraded to pid " + strconv.Itoa(o.pid))
			}
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
	in.log.Info("configuration reloaded", "file", in.cfg.Path, "answers", len(in.cfg.Answers)+3, "max_connections", in.cfg.Limits.MaxConnections)
}

func (in *instance) apply() error {
	ncfg, err := in.src.Load()
	if err != nil {
		return err
	}
	if p := logPath(ncfg, in.defLog); p != "" && p != in.sink.Path() {
		if err := precreate(p); err != nil {
			return fmt.Errorf("log.file: %w", err)
		}
	}
	if err := in.svc.Reload(ncfg); err != nil {
		return err
	}
	if err := in.sink.apply(ncfg, in.defLog); err != nil {
		in.log.Error("log settings not applied", "err", err.Error())
	}
	in.cfg = ncfg
	return nil
}

// lastReload returns the outcome of the last reload.
func (in *instance) lastReload() ReloadResult {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.reload
}

// notifySignals subscribes to the instance's signals.
func notifySignals() (chan os.Signal, func()) {
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, signals...)
	return sigc, func() { signal.Stop(sigc) }
}
