package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"

	"zend/config"
	"zend/protocol"
)

// Service is a protocol.Server built from a configuration, with its
// listeners. Open binds synchronously, so that bind errors reach the caller;
// Start serves in goroutines.
type Service struct {
	log   *slog.Logger
	level *slog.LevelVar

	mu   sync.Mutex
	cfg  *config.Config
	srv  *protocol.Server
	lns  []net.Listener
	errc chan error
	wg   sync.WaitGroup
}

// NewService returns a service for cfg (already validated) that logs to
// log; level is the logger's level, changed on reload.
func NewService(cfg *config.Config, log *slog.Logger, level *slog.LevelVar) (*Service, error) {
	s := &Service{log: log, level: level, cfg: cfg, errc: make(chan error, 1)}
	srv, err := protocol.NewServer(protocol.Engine(cfg.Server.Engine), cfg.Server.Workers, s.settings(cfg), log)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	switch srv.Engine() {
	case protocol.EngineSingle:
		log.Warn("engine single serves one client at a time: an idle client stalls all others (for teaching and comparison only)")
	case protocol.EnginePool:
		log.Warn("engine pool serves server.workers clients per listener at a time: that many idle clients stall all others", "workers", cfg.Server.Workers)
	}
	return s, nil
}

// settings turns cfg into protocol settings, lowering max_connections when
// the open-file limit cannot hold it (as redis does with maxclients).
func (s *Service) settings(cfg *config.Config) protocol.Settings {
	lim := protocol.Limits{
		MaxConnections:   cfg.Limits.MaxConnections,
		MaxQuestionBytes: cfg.Limits.MaxQuestionBytes,
		IdleTimeout:      cfg.Limits.IdleTimeout.D(),
		QuestionTimeout:  cfg.Limits.QuestionTimeout.D(),
		WriteTimeout:     cfg.Limits.WriteTimeout.D(),
	}
	if soft, err := raiseNoFile(); err != nil {
		s.log.Warn("cannot read the open-file limit", "err", err.Error())
	} else if fit := int(soft) - reservedFDs - len(cfg.Server.Listen); lim.MaxConnections > fit {
		if fit < 1 {
			fit = 1
		}
		s.log.Warn("limits.max_connections does not fit in the open-file limit (RLIMIT_NOFILE), lowered",
			"max_connections", lim.MaxConnections, "nofile", soft, "now", fit)
		lim.MaxConnections = fit
	}
	return protocol.Settings{
		Answers:     protocol.NewAnswers(cfg.Answers),
		AnswerDelay: cfg.Server.AnswerDelay.D(),
		Limits:      lim,
	}
}

// Open binds every address of server.listen. On error nothing stays bound.
func (s *Service) Open() error {
	for _, a := range s.cfg.Server.Listen {
		ln, err := Listen(a, s.cfg.Server.Backlog)
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			s.lns = nil
			return err
		}
		s.lns = append(s.lns, ln)
	}
	return nil
}

// Start serves every listener in its own goroutine. A listener that fails
// for good is reported on Err.
func (s *Service) Start() {
	for _, ln := range s.lns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, protocol.ErrServerClosed) {
				select {
				case s.errc <- err:
				default:
				}
			}
		}()
	}
}

// Err delivers the first error that stopped a listener.
func (s *Service) Err() <-chan error { return s.errc }

// Addrs returns the bound addresses (the real ports of ":0").
func (s *Service) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Stats returns the server's counters.
func (s *Service) Stats() protocol.Stats { return s.srv.Stats() }

// Shutdown drains the server (see protocol.Server.Shutdown) and waits for
// the serving goroutines.
func (s *Service) Shutdown(ctx context.Context) (protocol.DrainResult, error) {
	res, err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return res, err
}

// Reload applies cfg (already validated) to the running service: answers,
// limits, answer delay and log level change at once, without dropping a
// connection. Keys that need a restart are logged and keep their old value.
func (s *Service) Reload(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cfg
	var fixed []string
	if cfg.Server.Engine != old.Server.Engine {
		fixed = append(fixed, "server.engine")
	}
	if cfg.Server.Workers != old.Server.Workers {
		fixed = append(fixed, "server.workers")
	}
	if !slices.Equal(cfg.Server.Listen, old.Server.Listen) {
		fixed = append(fixed, "server.listen")
	}
	if cfg.Server.Backlog != old.Server.Backlog {
		fixed = append(fixed, "server.backlog")
	}
	if cfg.Log.File != old.Log.File || cfg.Log.Format != old.Log.Format {
		fixed = append(fixed, "log.file", "log.format")
	}
	for _, k := range fixed {
		s.log.Warn("changed key needs a restart, keeping the old value", "key", k)
	}
	s.srv.Update(s.settings(cfg))
	s.level.Set(logLevel(cfg.Log.Level))
	s.cfg = cfg
	s.log.Info("configuration reloaded", "answers", len(cfg.Answers)+len(protocol.Builtin()), "max_connections", cfg.Limits.MaxConnections)
	return nil
}

// String describes the service for log lines.
func (s *Service) String() string {
	return fmt.Sprintf("%s engine on %v", s.cfg.Server.Engine, s.Addrs())
}
