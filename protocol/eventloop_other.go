//go:build !linux

package protocol

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
)

// The eventloop engine runs on Linux's epoll only (eventloop.go). On the
// other systems it is not built: config rejects server.engine =
// "eventloop" there, naming the engines the system has, and a Server asked
// for it here fails in Serve rather than fall back to another engine
// silently. These stubs are the names server.go uses from eventloop.go.

// errNoEventLoop is Serve's error for the eventloop engine off Linux.
var errNoEventLoop = fmt.Errorf("engine %q runs on Linux's epoll only: on %s use %s, %s or %s",
	EngineEventLoop, runtime.GOOS, EngineSingle, EnginePool, EngineGoroutine)

// elGroup has no loops off Linux.
type elGroup struct {
	loops []noLoop
	wg    sync.WaitGroup
}

// noLoop stands for a loop that never exists.
type noLoop struct{}

func (noLoop) wake() {}

func (s *Server) serveEventLoop(net.Listener) error { return errNoEventLoop }

func (s *Server) removeELListener(net.Listener) {}

func (*elGroup) closeFDs() {}

// urProbe: io_uring is Linux's.
func urProbe() error {
	return fmt.Errorf("%w: io_uring is Linux's, not %s's", ErrNoURing, runtime.GOOS)
}

// ErrNoURing wraps the reasons io_uring cannot serve here.
var ErrNoURing = errors.New("io_uring unavailable")
