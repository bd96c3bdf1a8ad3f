package main_test

// Tests that attack zend: slow-drip clients, floods, file descriptor
// exhaustion, reload storms and a full log disk. Loopback only, bounded in
// time; the numbers they see are logged.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// concurrentEngines are the engines that must hold against idle clients.
var concurrentEngines = []string{"goroutine", "eventloop", "uring"}

// conversationTime is how long one new client's conversation takes.
func conversationTime(t *testing.T, addr string) time.Duration {
	t.Helper()
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "Beautiful is better than?")
	if a, err := bufio.NewReader(c).ReadString('.'); err != nil || a != "Ugly." {
		t.Fatalf("probe answer %q %v", a, err)
	}
	return time.Since(t0)
}

// holdConns opens n connections to addr.
func holdConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	if len(conns) < n {
		t.Fatalf("opened %d of %d connections", len(conns), n)
	}
	return conns
}

func rssKB(t *testing.T, pid int) int {
	t.Helper()
	n, _ := strconv.Atoi(strings.Fields(procStatus(t, pid, "VmRSS"))[0])
	return n
}

func cpuTime(pid int) time.Duration {
	st := procStat(pid)
	if st == nil {
		return 0
	}
	ut, _ := strconv.Atoi(st[11])
	sy, _ := strconv.Atoi(st[12])
	return time.Duration(ut+sy) * 10 * time.Millisecond
}

// probeLatencies runs n conversations of a well-behaved client, one every
// pause, and returns their durations sorted.
func probeLatencies(t *testing.T, addr string, n int, pause time.Duration) []time.Duration {
	t.Helper()
	took := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		took = append(took, conversationTime(t, addr))
		time.Sleep(pause) // spreads the probes over the attack: not a wait
	}
	slices.Sort(took)
	return took
}

// p90 is the 90th percentile of sorted durations.
func p90(sorted []time.Duration) time.Duration {
	return sorted[(len(sorted)*9+9)/10-1]
}

// TestSlowloris: thousands of connections dripping a byte every second
// plus thousands idle; a well-behaved client is still served about as
// fast as without them, and the drippers are cut at
// limits.question_timeout.
//
// "As fast" is measured, not assumed: the same probes run against the
// same zend before the attack give the machine's own latency (slower
// under -race or on a busy machine). Under attack the p90 may be 10 times
// that, plus twice the time the attack's clients take to send one round
// of drips: zend must do that round's reads too (after the clients wrote
// them), and a probe arriving then waits for them. A zend that served the probe only after the drippers
// (or their question_timeout) is off by a second or more.
func TestSlowloris(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			const questionTimeout = 3 * time.Second
			p, addr := startZend(t, nil, "-engine", engine, "-set", "limits.question_timeout="+questionTimeout.String())
			const probes, pause = 10, 150 * time.Millisecond
			conversationTime(t, addr) // warm up
			base := probeLatencies(t, addr, probes, pause)
			const drippers, idlers = 2000, 2000
			drip := holdConns(t, addr, drippers)
			holdConns(t, addr, idlers)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var roundMax atomic.Int64 // the longest round of drips, ns
			dripping := time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					r0 := time.Now()
					for _, c := range drip {
						c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
						c.Write([]byte("x"))
					}
					if d := int64(time.Since(r0)); d > roundMax.Load() {
						roundMax.Store(d)
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			defer func() { close(stop); wg.Wait() }()
			took := probeLatencies(t, addr, probes, pause)
			round := time.Duration(roundMax.Load())
			limit := 10*p90(base) + 2*round
			t.Logf("%s: probe conversations alone: median %v, p90 %v, max %v", engine, base[probes/2], p90(base), base[probes-1])
			t.Logf("%s: while %d drip (a round of drips takes up to %v) and %d idle: median %v, p90 %v, max %v; limit for p90 %v; zend RSS %d KiB",
				engine, drippers, round, idlers, took[probes/2], p90(took), took[probes-1], limit, rssKB(t, p.cmd.Process.Pid))
			if p90(took) > limit {
				t.Errorf("well-behaved conversations took %v (p90) under attack, over 10 x %v (p90 alone) + 2 x %v (a round of drips)", p90(took), p90(base), round)
			}
			// Cut at question_timeout: every dripper is closed while
			// still dripping. The wait is generous, since only the
			// cut matters, not its promptness.
			end := dripping.Add(questionTimeout + 30*time.Second)
			closed, open := 0, 0
			for _, c := range drip {
				c.SetReadDeadline(end)
				_, err := c.Read(make([]byte, 1))
				switch {
				case err != nil && !isNetTimeout(err):
					closed++
				case err != nil:
					open++
				}
			}
			t.Logf("%s: drippers closed after %v (question_timeout %v)", engine, time.Since(dripping).Round(time.Millisecond), questionTimeout)
			if closed != drippers {
				t.Errorf("%d of %d slow-drip connections cut after question_timeout (%d still open %v after the first drip)", closed, drippers, open, time.Since(dripping).Round(time.Second))
			}
		})
	}
}

func isNetTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Per-connection memory that zend's design allows a held conversation
// (protocol: a conversation holds at most one pooled read buffer and the
// answers waiting to be written), and what a conversation costs besides.
const (
	readBufferKiB = 16 // one read
	answersKiB    = 33 // answers waiting, at most
	fixedConnKiB  = 16 // goroutine stack or event-loop state, conn, session, socket bookkeeping
	designConnKiB = readBufferKiB + answersKiB + fixedConnKiB
)

// raceMemFactor is how much more memory the race detector makes a Go
// program use (its documentation says 5 to 10 times).
func raceMemFactor() int {
	if raceBuild {
		return 10
	}
	return 1
}

// TestFlood: more clients than limits.max_connections; zend stays up
// within its memory bound, stops accepting, and serves a new client as
// soon as slots free.
//
// The memory bound is relative: zend's RSS after it served one client is
// the baseline, and the growth over it with the connections held may be
// at most what the design allows each (designConnKiB, times the race
// detector's overhead when zend runs under it). The clients waiting in
// the kernel's backlog cost zend nothing.
func TestFlood(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			const maxConns, floodN, repeat = 300, 1500, 40
			p, addr := startZend(t, nil, "-engine", engine, "-set", fmt.Sprintf("limits.max_connections=%d", maxConns))
			pid := p.cmd.Process.Pid
			var base []time.Duration
			for i := 0; i < 5; i++ {
				base = append(base, conversationTime(t, addr))
			}
			rss0 := rssKB(t, pid)
			flood := holdConns(t, addr, floodN) // the kernel's backlog holds the rest
			p.waitLog(t, `max_connections reached, not accepting`)
			// Every client asks questions. The accepted ones (which need
			// not be the first maxConns dialled) are answered, and the
			// answers are read once zend has written them all, so it has
			// read every question; the rest wait in the backlog.
			q := []byte(strings.Repeat("Simple is better than?", repeat))
			want := []byte(strings.Repeat("Complex.", repeat))
			var answered atomic.Int64
			for _, c := range flood {
				c.Write(q)
				go func() {
					c.SetReadDeadline(time.Now().Add(60 * time.Second))
					got := make([]byte, len(want))
					if _, err := io.ReadFull(c, got); err == nil && string(got) == string(want) {
						answered.Add(1)
					}
				}()
			}
			waitUntil(t, 30*time.Second, "the held connections answered", func() (bool, string) {
				n := answered.Load()
				return n == maxConns, fmt.Sprintf("%d of %d answered", n, maxConns)
			})
			rss := rssKB(t, pid)
			perConn := (rss - rss0) / maxConns
			bound := designConnKiB * raceMemFactor()
			t.Logf("%s: RSS %d KiB after one client, %d KiB with %d served (%d answered) and %d waiting in the backlog: %d KiB per connection (bound %d KiB)",
				engine, rss0, rss, maxConns, answered.Load(), floodN-maxConns, perConn, bound)
			if perConn > bound {
				t.Errorf("RSS grew %d KiB per held connection under a flood, over the %d KiB a connection may cost", perConn, bound)
			}
			// Full: a new client waits, for as long as 50 of the slowest
			// conversation this machine had before the flood...
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "Explicit is better than?")
			window := 50 * slices.Max(base)
			c.SetReadDeadline(time.Now().Add(window))
			if n, _ := c.Read(make([]byte, 9)); n > 0 {
				t.Fatalf("answered above max_connections (waited up to %v)", window)
			}
			// ... and is served once the flood leaves.
			for _, f := range flood {
				f.Close()
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 9)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "Implicit." {
				t.Fatalf("after the flood: %q %v", got, err)
			}
			p.waitLog(t, `msg="accepting again"`)
		})
	}
}

// TestFDExhaustion: with its open-file limit lowered under it, zend backs
// off on EMFILE instead of spinning, and recovers when fds free up.
//
// Spinning is judged against the same zend idle: its CPU time over the
// same window before the attack, as the baseline. Out of fds it may use 3
// times that, plus a twentieth of the window (5% of one core); a busy
// accept loop takes all of a core, or a third of one on a busy 2-core
// machine.
//
// (uring's accept reads RLIMIT_NOFILE when it is armed: the one armed
// before the prlimit still has the old limit, the next ones the new.)
func TestFDExhaustion(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			const window = 2 * time.Second
			p, addr := startZend(t, nil, "-engine", engine)
			pid := p.cmd.Process.Pid
			askOnce(t, addr, "Simple is better than?")
			cpu0 := cpuTime(pid)
			time.Sleep(window) // the measurement window, not a wait
			idle := cpuTime(pid) - cpu0
			var old unix.Rlimit
			low := unix.Rlimit{Cur: 48, Max: 20000}
			if err := prlimitNoFile(pid, &low, &old); err != nil {
				t.Fatalf("prlimit: %v", err)
			}
			conns := holdConns(t, addr, 200) // far more than 48 fds
			p.waitLog(t, `accept error, backing off.*too many open files`)
			cpu0 = cpuTime(pid)
			time.Sleep(window) // the measurement window, not a wait
			used := cpuTime(pid) - cpu0
			limit := 3*idle + window/20
			t.Logf("%s: CPU time over %v: %v idle, %v out of file descriptors (limit %v)", engine, window, idle, used, limit)
			if used > limit {
				t.Errorf("zend used %v of CPU in %v while out of fds, %v idle: a busy loop", used, window, idle)
			}
			prlimitNoFile(pid, &old, nil)
			for _, c := range conns {
				c.Close()
			}
			// Recovered: a new client is served.
			for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if a, err := askOnceTry(addr, "Simple is better than?"); err == nil && a == "Complex." {
					break
				} else if time.Now().After(end) {
					t.Fatalf("no recovery after the fds came back: %q %v", a, err)
				}
			}
		})
	}
}

func askOnceTry(addr, q string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, q)
	return bufio.NewReader(c).ReadString('.')
}

// TestReloadStorm: 100 SIGHUPs in a row while 50 clients ask: no failed
// or wrong answer.
func TestReloadStorm(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			cfg := writeFile(t, t.TempDir(), "zend.toml", "[answers]\n\"Readability counts?\" = \"Yes.\"\n")
			p, addr := startZend(t, nil, "-c", cfg, "-listen", "127.0.0.1:0", "-engine", engine)
			var asked, failed atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := 0; i < 50; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						failed.Add(1)
						return
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(60 * time.Second))
					r := bufio.NewReader(c)
					for {
						select {
						case <-stop:
							return
						default:
						}
						io.WriteString(c, "Readability counts?Simple is better than?")
						a, err1 := r.ReadString('.')
						b, err2 := r.ReadString('.')
						asked.Add(2)
						if err1 != nil || err2 != nil || a != "Yes." || b != "Complex." {
							failed.Add(1)
							return
						}
					}
				}()
			}
			for i := 0; i < 100; i++ {
				p.cmd.Process.Signal(syscall.SIGHUP)
				time.Sleep(10 * time.Millisecond) // the storm's pace: the scenario, not a wait
			}
			p.waitLog(t, `msg="configuration reloaded"`)
			time.Sleep(200 * time.Millisecond) // clients go on asking after the storm: the scenario
			close(stop)
			wg.Wait()
			t.Logf("%s: %d questions during 100 reloads, %d failed", engine, asked.Load(), failed.Load())
			if failed.Load() != 0 || asked.Load() == 0 {
				t.Fatalf("%d failures in %d questions", failed.Load(), asked.Load())
			}
		})
	}
}

// TestLogDiskFull: the log's file system fills up; zend keeps serving and
// says so in the first line it manages to write afterwards.
func TestLogDiskFull(t *testing.T) {
	needSystem(t, "zend serving on while its log's tmpfs (mounted for the test) is full")
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	os.Mkdir(logDir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", logDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", logDir).Run() })
	logf := filepath.Join(logDir, "zend.log")
	addr := freeAddr(t)
	p := start(t, "zend", nil, "-listen", addr, "-set", "log.file="+logf, "run")
	waitDial(t, addr)
	// Fill the disk.
	filler := filepath.Join(logDir, "filler")
	f, _ := os.Create(filler)
	f.Write(make([]byte, 128<<10))
	f.Close()
	for i := 0; i < 200; i++ {
		if a, err := askOnceTry(addr, "Simple is better than?"); err != nil || a != "Complex." {
			t.Fatalf("not served while the log disk is full: %q %v", a, err)
		}
	}
	os.Remove(filler)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		askOnceTry(addr, "Simple is better than?")
		b, _ := os.ReadFile(logf)
		if strings.Contains(string(b), "log writes failed before this line") {
			// A record cut by the full disk ends its own line: the next
			// one starts on a line of its own.
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if !strings.HasPrefix(line, "time=") || strings.Count(line, "time=2") != 1 {
					t.Errorf("a record runs into another: %q", line)
				}
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the log does not say records were lost:\n%s\nstderr:\n%s", b, p.log())
		}
	}
	_ = fmt.Sprint
}

// burstResult is what a burst of connects saw.
type burstResult struct {
	took       time.Duration // the whole burst
	slowest    time.Duration // the slowest connect
	retrans    int           // connects whose SYN was sent again
	retransMin time.Duration // the fastest of those
	failed     int
}

// connectBurst opens n connections to addr at once and closes them.
func connectBurst(t *testing.T, addr string, n int) burstResult {
	t.Helper()
	var mu sync.Mutex
	var r burstResult
	var wg sync.WaitGroup
	conns := make([]net.Conn, n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			c, err := net.DialTimeout("tcp", addr, 30*time.Second)
			d := time.Since(s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.failed++
				return
			}
			conns[i] = c
			r.slowest = max(r.slowest, d)
			if synRetransmitted(c) {
				r.retrans++
				if r.retransMin == 0 || d < r.retransMin {
					r.retransMin = d
				}
			}
		}()
	}
	wg.Wait()
	r.took = time.Since(t0)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return r
}

func (r burstResult) String() string {
	s := fmt.Sprintf("in %v, slowest %v, %d failed, %d SYNs sent again", r.took.Round(time.Millisecond), r.slowest.Round(time.Millisecond), r.failed, r.retrans)
	if r.retrans > 0 {
		s += fmt.Sprintf(" (those connects took %v or more)", r.retransMin.Round(time.Millisecond))
	}
	return s
}

// TestConnectBurst: as many clients as the system's backlog allows
// (net.core.somaxconn, at most 10,000) connecting at once do not stall on
// the accept queue: zend listens with that backlog, so no SYN is dropped
// however slowly it accepts. A dropped SYN costs its client a
// retransmission a second later.
//
// The baseline is the same burst against zend with a backlog of 16, on
// which some SYNs are dropped: it shows what a drop costs a client on
// this machine, and that the test sees drops. A drop is seen exactly, in
// the client socket's retransmission count (TCP_INFO), rather than
// guessed from how long a connect took: on a busy machine a burst takes
// over a second without any drop.
func TestConnectBurst(t *testing.T) {
	n := 10000
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v < n {
			n = v
		}
	}
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			burst := func(backlog int) burstResult {
				addr := freeAddr(t)
				p := start(t, "zend", nil, "-listen", addr, "-engine", engine, "-set", "log.level=warn", "-set", fmt.Sprintf("server.backlog=%d", backlog), "run")
				waitDial(t, addr)
				r := connectBurst(t, addr, n)
				p.cmd.Process.Signal(syscall.SIGTERM)
				p.wait(t, 10*time.Second)
				return r
			}
			got := burst(0) // 0: the system's maximum, zend's default
			t.Logf("%s: %d connects at once with zend's backlog: %v", engine, n, got)
			base := burst(16)
			t.Logf("%s: %d connects at once with a backlog of 16: %v", engine, n, base)
			if got.failed > 0 {
				t.Fatalf("%d of %d connects failed", got.failed, n)
			}
			if got.retrans > 0 {
				t.Errorf("%d connects had their SYN dropped from a full accept queue (the slowest took %v; with a backlog of 16, %d did, taking %v or more)",
					got.retrans, got.slowest, base.retrans, base.retransMin)
			}
			if base.retrans == 0 {
				t.Errorf("no SYN was dropped with a backlog of 16 either: the test cannot tell a dropped SYN (burst %v)", base)
			}
		})
	}
}
