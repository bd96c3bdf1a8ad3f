package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"zend/config"
)

// RunOptions configure Run.
type RunOptions struct {
	// Source is where the configuration comes from; SIGHUP loads it again.
	Source config.Source
	// Config is the configuration loaded from Source, already validated.
	Config *config.Config
	// Stderr receives the log when log.file is "" or "-".
	Stderr io.Writer
	// Ready, when set, is called once every listener is bound and served.
	Ready func(addrs []net.Addr)
}

// Run serves in the foreground until ctx ends or SIGTERM/SIGINT arrives,
// then drains for at most limits.shutdown_timeout; a second SIGTERM/SIGINT
// ends the drain at once. SIGHUP reloads the configuration from
// opts.Source, keeping the old one when the new one is invalid. One
// goroutine (this one) owns the lifecycle; every signal arrives through one
// channel. Run returns nil after a shutdown, or the error that kept the
// service from starting or from serving.
func Run(ctx context.Context, opts RunOptions) error {
	cfg := opts.Config
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Log.Level))
	var out io.Writer = opts.Stderr
	if f := cfg.Abs(cfg.Log.File); f != "" && f != "-" {
		lf, err := openAppend(f)
		if err != nil {
			return err
		}
		defer lf.Close()
		out = lf
	}
	log := newLogger(out, cfg.Log.Format, level)
	if cfg.Path == "" {
		log.Info("no configuration file, running on embedded defaults", "missing", config.DefaultPath)
	} else {
		log.Info("configuration loaded", "file", cfg.Path)
	}

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigc)

	svc, err := NewService(cfg, log, level)
	if err != nil {
		return err
	}
	if err := svc.Open(); err != nil {
		log.Error("cannot start", "err", err.Error())
		return err
	}
	svc.Start()
	log.Info("zend ready", "pid", os.Getpid(), "engine", cfg.Server.Engine, "addrs", fmt.Sprint(svc.Addrs()))
	if opts.Ready != nil {
		opts.Ready(svc.Addrs())
	}

	var (
		stopping  bool
		forceStop context.CancelFunc
		drained   = make(chan error, 1)
		serveErr  error
	)
	stop := func(why string) {
		if stopping {
			log.Warn("second stop request, closing open conversations now", "signal", why)
			forceStop()
			return
		}
		stopping = true
		timeout := cfg.Limits.ShutdownTimeout.D()
		log.Info("shutting down", "reason", why, "open", svc.Stats().Open, "drain_timeout", timeout.String())
		var dctx context.Context
		dctx, forceStop = context.WithTimeout(context.Background(), timeout)
		go func() {
			start := time.Now()
			res, err := svc.Shutdown(dctx)
			log.Info("stopped", "finished", res.Finished, "cut_off", res.Cut, "took", time.Since(start).Round(time.Millisecond).String())
			drained <- err
		}()
	}
	done := ctx.Done()
	for {
		select {
		case sig := <-sigc:
			switch sig {
			case syscall.SIGHUP:
				if stopping {
					continue
				}
				ncfg, err := opts.Source.Load()
				if err != nil {
					log.Error("reload failed, keeping the running configuration", "err", err.Error())
					continue
				}
				svc.Reload(ncfg)
				cfg = ncfg
			default:
				stop(sig.String())
			}
		case <-done:
			done = nil
			stop("context ended")
		case err := <-svc.Err():
			log.Error("listener failed", "err", err.Error())
			serveErr = err
			stop("listener failed")
		case <-drained:
			forceStop()
			return serveErr
		}
	}
}
