package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"zend/config"
)

// RunOptions configure Run.
type RunOptions struct {
	// Source is where the configuration comes from; SIGHUP loads it again.
	Source config.Source
	// Config is the configuration loaded from Source, already validated.
	Config *config.Config
	// Stderr receives the log when log.file is unset or "-".
	Stderr io.Writer
	// Ready, when set, is called once every listener is bound and served.
	Ready func(addrs []net.Addr)
}

// Run serves in the foreground ("zend run") until ctx ends or SIGTERM or
// SIGINT arrives, then drains for at most limits.shutdown_timeout; a second
// SIGTERM/SIGINT ends the drain at once. SIGHUP reloads the configuration
// from opts.Source, keeping the old one when the new one is invalid;
// SIGUSR1 reopens the log file. Run returns nil after a shutdown, or the
// error that kept the service from starting or from serving.
func Run(ctx context.Context, opts RunOptions) error {
	cfg := opts.Config
	sink, err := newLogSink(cfg, "", opts.Stderr, false)
	if err != nil {
		return err
	}
	defer sink.Close()
	in := &instance{src: opts.Source, cfg: cfg, sink: sink, log: sink.Logger(), started: time.Now()}
	if cfg.Path != "" {
		in.src.Path = cfg.Path // a reload finds the same file
	}
	if cfg.Path == "" {
		in.log.Info("no configuration file, running on embedded defaults", "missing", config.DefaultPath)
	} else {
		in.log.Info("configuration loaded", "file", cfg.Path)
	}
	sigc, stopSignals := notifySignals()
	defer stopSignals()

	svc, err := NewService(cfg, in.log)
	if err != nil {
		return err
	}
	handed, err := listenersFrom(inheritedFiles())
	if err != nil {
		in.log.Error("cannot start", "err", err.Error())
		return err
	}
	svc.UseListeners(handed)
	if err := svc.Open(); err != nil {
		in.log.Error("cannot start", "err", err.Error())
		return err
	}
	in.svc = svc
	ms, err := listenMetrics(cfg.Metrics.Listen)
	if err != nil {
		svc.Shutdown(context.Background())
		in.log.Error("cannot start", "err", err.Error())
		return err
	}
	defer ms.close()
	ms.serve(in, in.log)
	svc.Start()
	in.log.Info("zend ready", "pid", os.Getpid(), "engine", cfg.Server.Engine, "addrs", fmt.Sprint(svc.Addrs()))
	in.notify = sdNotify
	in.notify(sdReady, "STATUS="+in.statusLine())
	if opts.Ready != nil {
		opts.Ready(svc.Addrs())
	}
	return in.loop(ctx, sigc)
}
