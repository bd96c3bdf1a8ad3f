//go:build !linux

package main

import (
	"context"
	"sync"
)

// The ask mode's generator off Linux, which has no epoll: a goroutine per
// connection (askWorker, the idle mode's probe), which Go's netpoller
// multiplexes on kqueue. It costs more CPU per request than the epoll
// loops of epoll_linux.go, and that CPU time is reported all the same.

// askLoop drives conns connections (worker numbers first, first+1, ...)
// until ctx ends.
func askLoop(ctx context.Context, o options, first, conns int, h *hist, cnt *counters) {
	hists := make([]*hist, conns)
	var wg sync.WaitGroup
	for i := range hists {
		hists[i] = new(hist)
		wg.Go(func() { askWorker(ctx, o, first+i, hists[i], cnt) })
	}
	wg.Wait()
	for _, x := range hists {
		h.merge(x)
	}
}
