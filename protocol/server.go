package protocol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Engine names a server design of the chapter.
type Engine string

// The engines; config lists which a configuration may name.
const (
	// EngineSingle runs one conversation at a time (listing 7-3). An idle
	// client stalls every other client: kept for teaching and comparison.
	EngineSingle Engine = "single"
	// EnginePool runs Workers workers per listener, each blocking in
	// accept and then running one conversation (listing 7-4). Workers idle
	// clients stall the rest.
	EnginePool Engine = "pool"
	// EngineGoroutine runs one goroutine per connection, at most
	// Limits.MaxConnections at once (listing 7-5 without its flaw).
	EngineGoroutine Engine = "goroutine"
	// EngineEventLoop runs workers epoll loops (default half the CPUs),
	// each serving many connections from one goroutine (listing 7-6 done
	// right, one loop per core as the chapter concludes). Linux only.
	EngineEventLoop Engine = "eventloop"
	// EngineURing is the event loop on io_uring: accepts, receives into
	// provided buffers and sends all submitted with the next wait, so
	// that one system call serves many answers. Linux 6.0 and later; where
	// io_uring is unavailable (kernel.io_uring_disabled, a seccomp filter,
	// an older kernel) NewServer falls back to EngineEventLoop and logs
	// why.
	EngineURing Engine = "uring"
	// EngineAuto picks the best engine that runs here: uring, else
	// eventloop on Linux, else goroutine. NewServer logs its choice.
	EngineAuto Engine = "auto"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server closed")

// drainPoll is how long a draining connection may stay quiet between
// questions before it is closed at that question boundary: a client
// asking in lockstep sends its next question within a round trip, so its
// conversation finishes instead of losing a question in flight.
const drainPoll = 100 * time.Millisecond

// lingerMax bounds how long a closing connection reads and discards what the
// client still sends after the server's FIN (nginx's lingering_close), so
// that the kernel does not answer unread bytes with a reset that would
// destroy answers still in flight.
const lingerMax = 2 * time.Second

// Server runs conversations on the connections of one or more listeners with
// one engine. Create it with NewServer; it is safe for concurrent use.
type Server struct {
	asked      Engine       // the engine asked for: auto and uring are resolved on first use
	engineOnce sync.Once    // resolves asked into eng
	eng        atomic.Value // Engine: the one in force
	workers    int
	log        *slog.Logger

	settings atomic.Pointer[Settings]

	mu        sync.Mutex
	cond      *sync.Cond // signalled when a slot frees or on shutdown
	listeners map[net.Listener]struct{}
	conns     connList // tracked conversations of the goroutine-per-connection engines
	slots     int      // reserved conversation slots (goroutine engine)
	fullSaid  bool     // "max_connections reached" logged for this episode
	drainEnd  time.Time
	closing   bool
	connWG    sync.WaitGroup
	serveWG   sync.WaitGroup
	single    sync.Mutex // serialises conversations of the single engine

	shutdown atomic.Bool
	draining atomic.Bool
	srcs     sources
	refusals refusals

	answerHits  map[string]*atomic.Uint64 // by answer; guarded by mu
	unknownHits atomic.Uint64
	refusedBy   [4]atomic.Uint64 // by refusalReasons
	latency     latencyHist
	cutCount    atomic.Int64  // conversations cut off by a drain deadline
	kill        chan struct{} // closed when the drain deadline ends
	killOnce    sync.Once

	elOnce sync.Once // the event loops, started by the first Serve
	elErr  error
	el     atomic.Pointer[elGroup]
	total  atomic.Uint64
	done   atomic.Uint64
	open   atomic.Int64
	// urArmed counts the uring engine's accepts in flight: each holds a
	// conversation slot until it completes.
	urArmed atomic.Int64
}

// NewServer returns a server that runs engine with the given settings.
// workers is the number of workers per listener of the pool engine (at least
// 1). A nil logger discards log records.
func NewServer(engine Engine, workers int, st Settings, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch engine {
	case EngineSingle, EnginePool, EngineGoroutine, EngineEventLoop, EngineURing, EngineAuto:
	default:
		return nil, fmt.Errorf("unknown engine %q", engine)
	}
	if workers < 1 {
		switch engine {
		case EnginePool:
			workers = 4
		case EngineEventLoop, EngineURing, EngineAuto:
			workers = 0 // defaultLoops
		default:
			workers = 1
		}
	}
	s := &Server{
		asked:     engine,
		workers:   workers,
		log:       logger,
		listeners: make(map[net.Listener]struct{}),
		kill:      make(chan struct{}),

		answerHits: make(map[string]*atomic.Uint64),
	}
	s.cond = sync.NewCond(&s.mu)
	s.Update(st)
	return s, nil
}

// chooseEngine resolves uring and auto to the engine that runs here,
// logging what it chose and why.
func chooseEngine(e Engine, log *slog.Logger) Engine {
	err := urProbe()
	switch {
	case err == nil:
		if e == EngineAuto {
			log.Info("engine auto: uring", "engine", string(EngineURing))
		}
		return EngineURing
	case e == EngineURing:
		log.Warn("io_uring unavailable, engine uring falls back to eventloop", "err", err.Error())
		return EngineEventLoop
	case runtime.GOOS == "linux":
		log.Info("engine auto: eventloop, io_uring unavailable", "engine", string(EngineEventLoop), "err", err.Error())
		return EngineEventLoop
	}
	log.Info("engine auto: goroutine", "engine", string(EngineGoroutine))
	return EngineGoroutine
}

// Engine returns the server's engine: for uring and auto, the one chosen.
//
// auto and uring are resolved at the first call (Serve makes it), not in
// NewServer: a daemon creates its server as root and drops privileges
// before it serves, and io_uring may be open to root alone
// (kernel.io_uring_disabled = 1), so the probe must run as the user that
// serves. If the loops still cannot be set up then, uring falls back to
// eventloop there, and Engine says so from then on.
func (s *Server) Engine() Engine {
	s.engineOnce.Do(func() {
		e := s.asked
		if e == EngineURing || e == EngineAuto {
			e = chooseEngine(e, s.log)
		}
		s.eng.Store(e)
	})
	return s.eng.Load().(Engine)
}

// Update replaces the settings. Conversations use the new answers and limits
// from their next question on; no connection is dropped.
func (s *Server) Update(st Settings) {
	s.mu.Lock()
	st.Answers = st.Answers.counted(s.answerCounter, &s.unknownHits)
	s.mu.Unlock()
	s.settings.Store(&st)
	s.mu.Lock()
	s.fullSaid = false
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Settings returns the settings in force.
func (s *Server) Settings() Settings { return *s.settings.Load() }

// Stats is a snapshot of the server's counters.
type Stats struct {
	Open  int64  // conversations open now
	Total uint64 // connections accepted since start
	Done  uint64 // conversations ended since start
}

// Stats returns the server's counters. Done is read before Total, so
// Total > Done while any accepted connection has not finished, including
// one accepted but not yet counted as open.
func (s *Server) Stats() Stats {
	done := s.done.Load()
	return Stats{Open: s.open.Load(), Total: s.total.Load(), Done: done}
}

// Serve accepts connections on ln and runs conversations on them with the
// server's engine until Shutdown or Close. Serve may be called for several
// listeners at once. It returns ErrServerClosed after Shutdown or Close, or
// the error that made accepting impossible. Temporary accept errors (out of
// file descriptors, for example) back off from 5 ms to 1 s and never end
// Serve.
func (s *Server) Serve(ln net.Listener) error {
	if !s.trackListener(ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	engine := s.Engine()
	s.log.Info("listening", "addr", ln.Addr().String(), "engine", string(engine))
	switch engine {
	case EngineEventLoop, EngineURing:
		return s.serveEventLoop(ln)
	case EngineSingle:
		return s.acceptLoop(ln, false, func(c net.Conn) {
			s.single.Lock()
			defer s.single.Unlock()
			s.serveConn(c)
		})
	case EnginePool:
		errc := make(chan error, s.workers)
		for i := 0; i < s.workers; i++ {
			go func() { errc <- s.acceptLoop(ln, false, s.serveConn) }()
		}
		var first error
		for i := 0; i < s.workers; i++ {
			err := <-errc
			if first == nil || (errors.Is(first, ErrServerClosed) && !errors.Is(err, ErrServerClosed)) {
				first = err
			}
		}
		return first
	default:
		return s.acceptLoop(ln, true, func(nc net.Conn) {
			c := s.begin(nc) // tracked before its goroutine starts
			if c == nil {
				s.releaseSlot()
				return
			}
			go func() {
				defer s.releaseSlot()
				s.converse(c)
				s.closeConn(c)
			}()
		})
	}
}

// acceptLoop accepts until the listener is closed. With gate set it reserves
// a conversation slot before each accept, so that above MaxConnections the
// kernel's backlog holds new clients instead of zend accepting and dropping
// them.
func (s *Server) acceptLoop(ln net.Listener, gate bool, handle func(net.Conn)) error {
	var delay time.Duration
	for {
		if gate && !s.reserveSlot() {
			return ErrServerClosed
		}
		c, err := ln.Accept()
		if err != nil {
			if gate {
				s.releaseSlot()
			}
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			if !temporary(err) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			s.log.Warn("accept error, backing off", "addr", ln.Addr().String(), "err", err.Error(), "retry_in", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.total.Add(1)
		handle(c)
	}
}

// temporary reports whether an accept error may go away by itself.
func temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EAGAIN, syscall.ECONNABORTED, syscall.EINTR, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// reserveSlot waits for a free conversation slot; false means shutdown.
func (s *Server) reserveSlot() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closing {
		max := s.settings.Load().Limits.MaxConnections
		if max <= 0 || s.slots < max {
			s.slots++
			return true
		}
		if !s.fullSaid {
			s.fullSaid = true
			s.log.Warn("max_connections reached, not accepting until a conversation ends", "max_connections", max)
		}
		s.cond.Wait()
	}
	return false
}

func (s *Server) releaseSlot() {
	s.mu.Lock()
	s.slots--
	if s.fullSaid {
		max := s.settings.Load().Limits.MaxConnections
		if s.slots < max {
			s.fullSaid = false
			s.log.Info("accepting again", "open", s.open.Load(), "max_connections", max)
		}
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing {
			return false
		}
		s.listeners[ln] = struct{}{}
		s.serveWG.Add(1)
		return true
	}
	delete(s.listeners, ln)
	s.serveWG.Done()
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		// A connection accepted while Shutdown began is served like the
		// others (it drains); only after the deadline is it refused.
		if s.killed() {
			return false
		}
		s.conns.add(c)
		s.connWG.Add(1)
		s.open.Add(1)
		return true
	}
	s.conns.remove(c)
	s.open.Add(-1)
	s.done.Add(1)
	s.connWG.Done()
	return true
}

// ServeConn runs one conversation on c and closes it, as the engines do for
// each accepted connection. It is for connections that were accepted
// elsewhere (inetd's fd 0). Shutdown drains it like any other.
func (s *Server) ServeConn(c net.Conn) {
	s.total.Add(1)
	s.serveConn(c)
}

// DrainResult tells what a Shutdown did to the conversations it found open.
type DrainResult struct {
	Open     int // conversations open when Shutdown began
	Finished int // of those, how many ended by themselves or at a question boundary
	Cut      int // of those, how many were closed when ctx ended
}

// Shutdown stops accepting (closing every listener), lets each open
// conversation finish the question it is in and receive every answer it has
// asked for, closes it at that question boundary, and returns when none is
// left. When ctx ends first, the remaining conversations are closed at once
// and Shutdown returns ctx's error. Serve returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) (DrainResult, error) {
	s.shutdown.Store(true)
	s.mu.Lock()
	s.closing = true
	if dl, ok := ctx.Deadline(); ok {
		s.drainEnd = dl
	}
	for ln := range s.listeners {
		ln.Close()
	}
	res := DrainResult{Open: int(s.open.Load())}
	s.draining.Store(true)
	for c := s.conns.head; c != nil; c = c.next {
		c.nc.SetReadDeadline(time.Now()) // wake readers: they check draining
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wakeLoops()

	done := make(chan struct{})
	go func() {
		s.serveWG.Wait() // no accept loop can start a conversation after this
		s.connWG.Wait()
		if g := s.el.Load(); g != nil {
			g.wg.Wait()
			g.closeFDs()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.killOnce.Do(func() { close(s.kill) })
		s.wakeLoops()
		s.mu.Lock()
		for c := s.conns.head; c != nil; c = c.next {
			c.cut.Store(true)
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	res.Cut = int(s.cutCount.Load())
	res.Finished = max(res.Open-res.Cut, 0)
	if err := ctx.Err(); err != nil && res.Cut > 0 {
		return res, err
	}
	if res.Cut > 0 {
		return res, context.DeadlineExceeded
	}
	return res, nil
}

// CloseListener stops serving ln and closes it; its Serve returns
// ErrServerClosed. The other listeners and every conversation go on.
func (s *Server) CloseListener(ln net.Listener) error {
	if e := s.Engine(); e == EngineEventLoop || e == EngineURing {
		s.removeELListener(ln)
	}
	return ln.Close()
}

// killed reports whether the drain deadline has ended.
func (s *Server) killed() bool {
	select {
	case <-s.kill:
		return true
	default:
		return false
	}
}

// wakeLoops makes the event loops look at the server's state.
func (s *Server) wakeLoops() {
	if g := s.el.Load(); g != nil {
		for _, l := range g.loops {
			l.wake()
		}
	}
}

// sayFull logs, once until sayAccepting, that max_connections is reached.
func (s *Server) sayFull(max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fullSaid {
		s.fullSaid = true
		s.log.Warn("max_connections reached, not accepting until a conversation ends", "max_connections", max)
	}
}

// sayAccepting logs that accepting resumed after sayFull.
func (s *Server) sayAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fullSaid {
		s.fullSaid = false
		s.log.Info("accepting again", "open", s.open.Load())
	}
}

// Close closes every listener and connection at once. Serve returns
// ErrServerClosed.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
