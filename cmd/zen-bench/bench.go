package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// options of one run.
type options struct {
	mode     string // ask, conn or idle
	loops    int    // ask mode: generator loops
	addr     string
	conns    int
	pipeline int
	duration time.Duration
	req      string // raw request; "" for the Zen questions
	resp     string // its expected reply
	pid      int    // the server's pid, for its CPU time and memory
	idle     int    // idle mode: connections to hold
	drip     time.Duration
	progress io.Writer // live progress once a second, or nil
}

// result of one run.
type result struct {
	Mode        string  `json:"mode"`
	Addr        string  `json:"addr"`
	Conns       int     `json:"connections"`
	Pipeline    int     `json:"pipeline"`
	Seconds     float64 `json:"seconds"`
	Requests    uint64  `json:"requests"`
	ConnsDone   uint64  `json:"connections_completed,omitempty"`
	PerSec      float64 `json:"requests_per_second"`
	ConnsPerSec float64 `json:"connections_per_second,omitempty"`
	Errors      uint64  `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	Latency     latency `json:"latency_us"`
	ClientCPU   float64 `json:"client_cpu_us_per_request"`
	ServerCPU   float64 `json:"server_cpu_us_per_request,omitempty"`
	// ServerCalls is the server's system calls per request, counted as
	// CallsSource says: "perf" (every call) or "proc-io" (read- and
	// write-like calls only).
	ServerCalls float64 `json:"server_syscalls_per_request,omitempty"`
	CallsSource string  `json:"server_syscalls_source,omitempty"`
	IdleConns   int     `json:"idle_connections,omitempty"`
	RSSBeforeKB int64   `json:"server_rss_before_kb,omitempty"`
	RSSAfterKB  int64   `json:"server_rss_after_kb,omitempty"`
	RSSPerConn  float64 `json:"server_rss_per_idle_connection_kb,omitempty"`
}

type latency struct {
	P50, P90, P99, P999, Max float64
}

// errWrong is a wrong answer: the run fails.
var errWrong = errors.New("wrong answer")

var zenQA = [][2]string{
	{"Beautiful is better than?", "Ugly."},
	{"Explicit is better than?", "Implicit."},
	{"Simple is better than?", "Complex."},
}

// batch returns the request of one round trip of depth questions for
// worker i, and the exact reply it must get.
func (o *options) batch(i, depth int) (req, want []byte) {
	for k := 0; k < depth; k++ {
		if o.req != "" {
			req = append(req, o.req...)
			want = append(want, o.resp...)
			continue
		}
		qa := zenQA[(i+k)%len(zenQA)]
		req = append(req, qa[0]...)
		want = append(want, qa[1]...)
	}
	return req, want
}

// counters shared by the workers.
type counters struct {
	requests, conns, errors atomic.Uint64
	mu                      sync.Mutex
	first                   error
	wrong                   atomic.Bool
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	c.mu.Lock()
	if c.first == nil {
		c.first = err
	}
	c.mu.Unlock()
	if errors.Is(err, errWrong) {
		c.wrong.Store(true)
	}
}

// run runs one benchmark.
func run(ctx context.Context, o options) (*result, error) {
	raiseNoFile()
	r := &result{Mode: o.mode, Addr: o.addr, Conns: o.conns, Pipeline: o.pipeline}
	var cnt counters
	hists := make([]*hist, o.conns)
	for i := range hists {
		hists[i] = new(hist)
	}
	if o.mode == "idle" {
		return runIdle(ctx, o, r)
	}
	calls := startSyscallCount(o.pid)
	cpu0, srv0 := selfCPU(), procCPU(o.pid)
	start := time.Now()
	end := start.Add(o.duration)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	stop := progress(o.progress, &cnt, start)
	var wg sync.WaitGroup
	if o.mode == "ask" {
		// A few epoll loops drive every connection.
		loops := min(max(o.loops, 1), o.conns)
		for k := 0; k < loops; k++ {
			first, n := k*o.conns/loops, (k+1)*o.conns/loops-k*o.conns/loops
			wg.Add(1)
			go func() {
				defer wg.Done()
				askLoop(ctx, o, first, n, hists[k], &cnt)
			}()
		}
	} else {
		for i := 0; i < o.conns; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				connWorker(ctx, o, i, hists[i], &cnt)
			}()
		}
	}
	wg.Wait()
	stop()
	elapsed := time.Since(start)
	cpu1, srv1 := selfCPU(), procCPU(o.pid)
	ncalls, callsHow := calls.stop()
	h := new(hist)
	for _, x := range hists {
		h.merge(x)
	}
	r.Seconds = elapsed.Seconds()
	r.Requests = cnt.requests.Load()
	r.ConnsDone = cnt.conns.Load()
	r.PerSec = float64(r.Requests) / r.Seconds
	if o.mode == "conn" {
		r.ConnsPerSec = float64(r.ConnsDone) / r.Seconds
	}
	r.Errors = cnt.errors.Load()
	if cnt.first != nil {
		r.FirstError = cnt.first.Error()
	}
	r.Latency = toLatency(h)
	if r.Requests > 0 {
		r.ClientCPU = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(r.Requests)
		if o.pid > 0 && srv1 >= srv0 {
			r.ServerCPU = float64(srv1-srv0) / float64(time.Microsecond) / float64(r.Requests)
		}
		if ncalls > 0 {
			r.ServerCalls, r.CallsSource = ncalls/float64(r.Requests), callsHow
		}
	}
	if cnt.wrong.Load() {
		return r, fmt.Errorf("%w: %v", errWrong, cnt.first)
	}
	if r.Requests == 0 {
		return r, fmt.Errorf("no request completed: %v", cnt.first)
	}
	return r, nil
}

func toLatency(h *hist) latency {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return latency{P50: us(h.quantile(0.50)), P90: us(h.quantile(0.90)), P99: us(h.quantile(0.99)), P999: us(h.quantile(0.999)), Max: us(time.Duration(h.max))}
}

// askWorker keeps one connection and asks pipeline questions per round
// trip until ctx ends.
func askWorker(ctx context.Context, o options, i int, h *hist, cnt *counters) {
	dl, _ := ctx.Deadline()
	c, err := net.DialTimeout("tcp", o.addr, 5*time.Second)
	if err != nil {
		cnt.fail(err)
		return
	}
	defer c.Close()
	c.SetDeadline(dl.Add(2 * time.Second))
	req, want := o.batch(i, o.pipeline)
	got := make([]byte, len(want))
	for ctx.Err() == nil {
		t0 := time.Now()
		if _, err := c.Write(req); err != nil {
			if ctx.Err() == nil {
				cnt.fail(err)
			}
			return
		}
		if _, err := io.ReadFull(c, got); err != nil {
			if ctx.Err() == nil || !isTimeout(err) {
				cnt.fail(err)
			}
			return
		}
		if !bytes.Equal(got, want) {
			cnt.fail(fmt.Errorf("%w: got %q, want %q", errWrong, clip(got), clip(want)))
			return
		}
		h.record(time.Since(t0))
		cnt.requests.Add(uint64(o.pipeline))
	}
}

// connWorker connects, asks the three questions one at a time, and hangs
// up, as the chapter's client does, until ctx ends.
func connWorker(ctx context.Context, o options, i int, h *hist, cnt *counters) {
	req, want := o.batch(i, 3)
	per := len(req) / 3
	if o.req != "" {
		per = len(o.req)
	}
	got := make([]byte, len(want))
	for ctx.Err() == nil {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", o.addr, 5*time.Second)
		if err != nil {
			cnt.fail(err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		ok := true
		off, woff := 0, 0
		for k := 0; k < 3 && ok; k++ {
			qlen, alen := per, len(o.resp)
			if o.req == "" {
				qa := zenQA[(i+k)%len(zenQA)]
				qlen, alen = len(qa[0]), len(qa[1])
			}
			if _, err := c.Write(req[woff : woff+qlen]); err != nil {
				cnt.fail(err)
				ok = false
				break
			}
			if _, err := io.ReadFull(c, got[off:off+alen]); err != nil {
				cnt.fail(err)
				ok = false
				break
			}
			woff += qlen
			off += alen
		}
		c.Close()
		if !ok {
			continue
		}
		if !bytes.Equal(got, want) {
			cnt.fail(fmt.Errorf("%w: got %q, want %q", errWrong, clip(got), clip(want)))
			return
		}
		h.record(time.Since(t0))
		cnt.requests.Add(3)
		cnt.conns.Add(1)
	}
}

// runIdle holds o.idle idle (or dripping) connections while a probe
// client asks one question at a time for o.duration.
func runIdle(ctx context.Context, o options, r *result) (*result, error) {
	r.IdleConns = o.idle
	r.Conns = 1
	r.RSSBeforeKB = procRSS(o.pid)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var dialErr atomic.Value
	sem := make(chan struct{}, 64)
	for i := 0; i < o.idle; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", o.addr, 10*time.Second)
			if err != nil {
				dialErr.Store(err)
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		return r, fmt.Errorf("opened %d of %d idle connections: %w", len(held), o.idle, err)
	}
	time.Sleep(time.Second) // let the server settle
	r.RSSAfterKB = procRSS(o.pid)
	if o.pid > 0 && o.idle > 0 {
		r.RSSPerConn = float64(r.RSSAfterKB-r.RSSBeforeKB) / float64(o.idle)
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	if o.drip > 0 {
		go func() {
			t := time.NewTicker(o.drip)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					for _, c := range held {
						c.SetWriteDeadline(time.Now().Add(time.Second))
						c.Write([]byte("x"))
					}
				}
			}
		}()
	}
	var cnt counters
	h := new(hist)
	cpu0, srv0 := selfCPU(), procCPU(o.pid)
	start := time.Now()
	stop := progress(o.progress, &cnt, start)
	probe := o
	probe.pipeline = 1
	askWorker(ctx, probe, 0, h, &cnt)
	stop()
	r.Seconds = time.Since(start).Seconds()
	r.Requests = cnt.requests.Load()
	r.PerSec = float64(r.Requests) / r.Seconds
	r.Errors = cnt.errors.Load()
	if cnt.first != nil {
		r.FirstError = cnt.first.Error()
	}
	r.Latency = toLatency(h)
	if r.Requests > 0 {
		r.ClientCPU = float64(selfCPU()-cpu0) / float64(time.Microsecond) / float64(r.Requests)
		if o.pid > 0 {
			r.ServerCPU = float64(procCPU(o.pid)-srv0) / float64(time.Microsecond) / float64(r.Requests)
		}
	}
	if cnt.wrong.Load() {
		return r, fmt.Errorf("%w: %v", errWrong, cnt.first)
	}
	if r.Requests == 0 {
		return r, fmt.Errorf("the probe got no answer while %d connections were held: %v", o.idle, cnt.first)
	}
	return r, nil
}

// progress prints the rate once a second to w (a terminal); stop ends it.
func progress(w io.Writer, cnt *counters, start time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := uint64(0)
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				n := cnt.requests.Load()
				fmt.Fprintf(w, "\r\033[K%5.0fs  %s req/s  errors %d", time.Since(start).Seconds(), human(float64(n-last)), cnt.errors.Load())
				last = n
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func clip(b []byte) []byte {
	if len(b) > 60 {
		return b[:60]
	}
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is pid's user+system CPU time, from /proc.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// procRSS is pid's resident memory in KiB.
func procRSS(pid int) int64 { return procStatus(pid, "VmRSS:") }

// procPeakRSS is pid's peak resident memory (its high-water mark) in KiB.
func procPeakRSS(pid int) int64 { return procStatus(pid, "VmHWM:") }

// procStatus is the KiB value of field in pid's /proc status (0 when
// there is none: not Linux, no such process, no pid given).
func procStatus(pid int, field string) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func raiseNoFile() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
}
