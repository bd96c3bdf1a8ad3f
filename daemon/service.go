package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	"zend/config"
	"zend/daemon/settings"
	"zend/protocol"
)

// Service is a protocol.Server built from a configuration, with its
// listeners. Open binds synchronously, so that bind errors reach the caller;
// Start serves in goroutines. Reload changes it while it serves.
type Service struct {
	log *slog.Logger

	mu      sync.Mutex
	cfg     *config.Config
	srv     *protocol.Server
	addrs   []string                // server.listen, in order
	lns     map[string]net.Listener // by server.listen entry
	removed map[net.Listener]bool   // closed on purpose by a reload
	started bool
	handed  bool // the listeners came from systemd: server.listen is not used
	metrics bool // metrics.listen was set at start: its descriptors are budgeted
	errc    chan error
	wg      sync.WaitGroup
}

// NewService returns a service for cfg (already validated) that logs to
// log.
func NewService(cfg *config.Config, log *slog.Logger) (*Service, error) {
	s := &Service{log: log, cfg: cfg, errc: make(chan error, 1), lns: map[string]net.Listener{}, removed: map[net.Listener]bool{},
		metrics: cfg.Metrics.Listen != ""}
	srv, err := protocol.NewServer(protocol.Engine(cfg.Server.Engine), cfg.Server.Workers, s.settings(cfg), log)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	switch protocol.Engine(cfg.Server.Engine) { // not srv.Engine(): it probes io_uring, which must wait for the privilege drop
	case protocol.EngineSingle:
		log.Warn("engine single serves one client at a time: an idle client stalls all others (for teaching and comparison only)")
	case protocol.EnginePool:
		log.Warn("engine pool serves server.workers clients per listener at a time: that many idle clients stall all others", "workers", cfg.Server.Workers)
	}
	return s, nil
}

// AnswersInForce returns the answer table cfg gives: the built-in
// aphorisms with [answers] on top (what Settings serves), for zend check
// to print.
func AnswersInForce(cfg *config.Config) map[string]string {
	m := protocol.Builtin()
	maps.Copy(m, cfg.Answers)
	return m
}

// settings is settings.From with max_connections lowered when the open-file
// limit cannot hold it (as redis does with maxclients). The metrics server
// is the one started with the service (metrics.listen needs a restart), so
// its descriptors are budgeted whatever cfg says.
func (s *Service) settings(cfg *config.Config) protocol.Settings {
	st := settings.From(cfg)
	metrics := 0
	if s.metrics {
		metrics = metricsFDs
	}
	return fitNoFile(st, len(cfg.Server.Listen), metrics, s.log)
}

// fitNoFile raises the soft open-file limit to the hard one and lowers
// MaxConnections to what it can hold (connectionsFit), saying so in the
// log.
func fitNoFile(st protocol.Settings, listeners, metrics int, log *slog.Logger) protocol.Settings {
	soft, err := raiseNoFile()
	if err != nil {
		log.Warn("cannot read the open-file limit", "err", err.Error())
		return st
	}
	if fit := connectionsFit(soft, listeners, metrics); st.Limits.MaxConnections > fit {
		args := []any{"max_connections", st.Limits.MaxConnections, "nofile", soft, "now", fit}
		if metrics > 0 {
			args = append(args, "metrics_fds", metrics)
		}
		log.Warn("limits.max_connections does not fit in the open-file limit (RLIMIT_NOFILE), lowered", args...)
		st.Limits.MaxConnections = fit
	}
	return st
}

// connectionsFit is how many conversations nofile descriptors hold beside
// reservedFDs, the listeners and the metrics server's descriptors
// (metricsFDs, or 0 without metrics); at least 1.
func connectionsFit(nofile uint64, listeners, metrics int) int {
	const most = 1 << 30 // above any kernel's fs.nr_open; keeps the int sane
	return max(int(min(nofile, most))-reservedFDs-listeners-metrics, 1)
}

// bind binds addrs; on error nothing stays bound. log hears of a
// dual-stack address bound for IPv4 only (see Listen).
func bind(addrs []string, backlog int, log *slog.Logger) (map[string]net.Listener, error) {
	out := make(map[string]net.Listener, len(addrs))
	for _, a := range addrs {
		if _, dup := out[a]; dup {
			continue
		}
		ln, err := Listen(a, backlog, log)
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			return nil, err
		}
		out[a] = ln
	}
	return out, nil
}

// UseListeners makes the service serve lns (sockets handed over by
// systemd) instead of binding server.listen. It is a no-op for none.
func (s *Service) UseListeners(lns []net.Listener) {
	if len(lns) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handed = true
	s.addrs = nil
	for _, ln := range lns {
		a := ln.Addr().String()
		s.lns[a] = ln
		s.addrs = append(s.addrs, a)
	}
	s.log.Info("serving sockets handed over by systemd; server.listen is not used", "addrs", strings.Join(s.addrs, ","))
}

// Adopt makes the service serve lns, keyed by the server.listen entries
// they were bound for (by the daemon this one upgrades): Open binds only
// the entries missing from them and closes those no longer listed. A
// dual-stack entry (":1060") whose socket is IPv4 (bound by a zend from
// before dual-stack, or on a host without IPv6) is kept, and the log says
// that IPv6 waits for a restart.
func (s *Service) Adopt(lns map[string]net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, ln := range lns {
		s.lns[a] = ln
		if ta, ok := ln.Addr().(*net.TCPAddr); ok && config.DualStack(a) && ta.IP.To4() != nil {
			s.log.Warn("the socket inherited for this address is IPv4 only: restart zend to serve IPv6 on it too", "addr", a, "socket", ta.String())
		}
	}
}

// Open binds every address of server.listen not already adopted, unless
// UseListeners gave the sockets, and closes adopted ones server.listen no
// longer names. On error nothing new stays bound.
func (s *Service) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handed {
		return nil
	}
	var missing []string
	for _, a := range s.cfg.Server.Listen {
		if _, ok := s.lns[a]; !ok {
			missing = append(missing, a)
		}
	}
	fresh, err := bind(missing, s.cfg.Server.Backlog, s.log)
	if err != nil {
		return err
	}
	for a, ln := range s.lns {
		if !slices.Contains(s.cfg.Server.Listen, a) {
			ln.Close()
			delete(s.lns, a)
			s.log.Info("stopped listening", "addr", a)
		}
	}
	for a, ln := range fresh {
		s.lns[a] = ln
	}
	s.addrs = slices.Clone(s.cfg.Server.Listen)
	return nil
}

// Start serves every listener in its own goroutine. A listener that fails
// for good is reported on Err.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	for _, a := range s.addrs {
		if ln, ok := s.lns[a]; ok {
			s.serve(ln)
		}
	}
}

func (s *Service) serve(ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.srv.Serve(ln)
		s.mu.Lock()
		onPurpose := s.removed[ln]
		delete(s.removed, ln)
		s.mu.Unlock()
		if err != nil && !errors.Is(err, protocol.ErrServerClosed) && !onPurpose {
			select {
			case s.errc <- err:
			default:
			}
		}
	}()
}

// Err delivers the first error that stopped a listener.
func (s *Service) Err() <-chan error { return s.errc }

// ListenerFDs returns the descriptors of the listening sockets, in order,
// for a new daemon to inherit. They stay owned by the service: the caller
// must not close them, and must hand them on with syscall.ForkExec, not
// as *os.File (os/exec would put the shared socket into blocking mode
// under the event loops' feet).
func (s *Service) ListenerFDs() ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fds []int
	for _, a := range s.addrs {
		ln, ok := s.lns[a]
		if !ok {
			continue
		}
		fd, err := rawFD(ln)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", a, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// rawFD returns the descriptor behind a listener.
func rawFD(ln any) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// Addrs returns the bound addresses (the real ports of ":0"), in the order
// of server.listen.
func (s *Service) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, a := range s.addrs {
		if ln, ok := s.lns[a]; ok {
			out = append(out, ln.Addr())
		}
	}
	return out
}

// Stats returns the server's counters.
func (s *Service) Stats() protocol.Stats { return s.srv.Stats() }

// Metrics returns what the server has done since it started.
func (s *Service) Metrics() protocol.Metrics { return s.srv.Metrics() }

// Engine returns the engine in use.
func (s *Service) Engine() string { return string(s.srv.Engine()) }

// Shutdown drains the server (see protocol.Server.Shutdown) and waits for
// the serving goroutines.
func (s *Service) Shutdown(ctx context.Context) (protocol.DrainResult, error) {
	res, err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return res, err
}

// ownAddrs returns the server.listen entries of the listeners ListenerFDs
// returns, in the same order; nil when the sockets are systemd's.
func (s *Service) ownAddrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handed {
		return nil
	}
	var out []string
	for _, a := range s.addrs {
		if _, ok := s.lns[a]; ok {
			out = append(out, a)
		}
	}
	return out
}

// Handed reports whether the listeners came from systemd (server.listen
// is not used then).
func (s *Service) Handed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handed
}

// Reload applies cfg (already validated, restart-only keys at their
// running values: see config.InForce) to the running service, without
// dropping a connection: answers, limits and answer delay change at once;
// new listen addresses are bound first and removed ones closed after. On
// error (a new address cannot be bound) nothing changes.
func (s *Service) Reload(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handed {
		s.srv.Update(s.settings(cfg))
		s.cfg = cfg
		return nil
	}
	var added, gone []string
	for _, a := range cfg.Server.Listen {
		if _, ok := s.lns[a]; !ok && !slices.Contains(added, a) {
			added = append(added, a)
		}
	}
	for _, a := range s.addrs {
		if !slices.Contains(cfg.Server.Listen, a) {
			gone = append(gone, a)
		}
	}
	fresh, err := bind(added, cfg.Server.Backlog, s.log)
	if errors.Is(err, syscall.EACCES) && os.Geteuid() != 0 {
		return fmt.Errorf("server.listen: %w (this daemon runs as uid %d since it dropped privileges: a port below 1024 needs a restart)", err, os.Geteuid())
	}
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	s.srv.Update(s.settings(cfg))
	for _, a := range added {
		s.lns[a] = fresh[a]
		if s.started {
			s.serve(fresh[a])
		}
	}
	for _, a := range gone {
		ln := s.lns[a]
		s.removed[ln] = true
		s.srv.CloseListener(ln)
		delete(s.lns, a)
		s.log.Info("stopped listening", "addr", ln.Addr().String())
	}
	s.addrs = slices.Clone(cfg.Server.Listen)
	s.cfg = cfg
	return nil
}
