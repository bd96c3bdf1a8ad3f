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
var concurrentEngines = []string{"goroutine", "eventloop"}

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

// TestSlowloris: thousands of connections dripping a byte every second
// plus thousands idle; a well-behaved client is still served within
// 100 ms, and the drippers are cut at limits.question_timeout.
func TestSlowloris(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			p, addr := startZend(t, nil, "-engine", engine, "-set", "limits.question_timeout=3s")
			const drippers, idlers = 2000, 2000
			drip := holdConns(t, addr, drippers)
			holdConns(t, addr, idlers)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					for _, c := range drip {
						c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
						c.Write([]byte("x"))
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			var took []time.Duration
			for i := 0; i < 10; i++ {
				took = append(took, conversationTime(t, addr))
				time.Sleep(150 * time.Millisecond)
			}
			slices.Sort(took)
			t.Logf("%s: probe conversations while %d drip and %d idle: median %v, p90 %v, max %v; zend RSS %d KiB",
				engine, drippers, idlers, took[5], took[8], took[9], rssKB(t, p.cmd.Process.Pid))
			if took[8] > 100*time.Millisecond {
				t.Errorf("well-behaved conversations took %v (p90), want under 100 ms", took[8])
			}
			// Cut at question_timeout (3 s): by 5 s every dripper is closed.
			time.Sleep(2 * time.Second)
			close(stop)
			wg.Wait()
			closed := 0
			for _, c := range drip {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err != nil && !isNetTimeout(err) {
					closed++
				}
			}
			if closed != drippers {
				t.Errorf("%d of %d slow-drip connections cut after question_timeout", closed, drippers)
			}
		})
	}
}

func isNetTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestFlood: more clients than limits.max_connections; zend stays up
// within its memory bound, stops accepting, and serves a new client as
// soon as slots free.
func TestFlood(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			p, addr := startZend(t, nil, "-engine", engine, "-set", "limits.max_connections=300")
			pid := p.cmd.Process.Pid
			flood := holdConns(t, addr, 1500) // the kernel's backlog holds the rest
			p.waitLog(t, `max_connections reached, not accepting`)
			// Each of the 300 held connections asks a question whose
			// answer is never read past the socket buffers.
			for _, c := range flood[:300] {
				c.Write([]byte(strings.Repeat("Simple is better than?", 40)))
			}
			time.Sleep(500 * time.Millisecond)
			rss := rssKB(t, pid)
			t.Logf("%s: RSS %d KiB with 300 served and 1200 waiting in the backlog", engine, rss)
			if rss > 64*1024 {
				t.Errorf("RSS %d KiB under a flood, over the 64 MiB bound for 300 connections", rss)
			}
			// Full: a new client waits...
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "Explicit is better than?")
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, _ := c.Read(make([]byte, 9)); n > 0 {
				t.Fatal("answered above max_connections")
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
func TestFDExhaustion(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			p, addr := startZend(t, nil, "-engine", engine)
			pid := p.cmd.Process.Pid
			var old unix.Rlimit
			low := unix.Rlimit{Cur: 48, Max: 20000}
			if err := prlimitNoFile(pid, &low, &old); err != nil {
				t.Fatalf("prlimit: %v", err)
			}
			conns := holdConns(t, addr, 200) // far more than 48 fds
			p.waitLog(t, `accept error, backing off.*too many open files`)
			cpu0 := cpuTime(pid)
			time.Sleep(2 * time.Second)
			used := cpuTime(pid) - cpu0
			t.Logf("%s: CPU time over 2 s out of file descriptors: %v", engine, used)
			if used > 300*time.Millisecond {
				t.Errorf("zend used %v of CPU in 2 s while out of fds: a busy loop", used)
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
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
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

// TestConnectBurst: 10,000 clients connecting at once do not stall on the
// accept queue: zend listens with the system's maximum backlog, so no SYN
// is dropped (a dropped one would cost its client a 1 s retransmission).
func TestConnectBurst(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			addr := freeAddr(t)
			start(t, "zend", nil, "-listen", addr, "-engine", engine, "-set", "log.level=warn", "run")
			waitDial(t, addr)
			const n = 10000
			var slowest atomic.Int64
			conns := make([]net.Conn, n)
			var wg sync.WaitGroup
			var failed atomic.Int64
			t0 := time.Now()
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := time.Now()
					c, err := net.DialTimeout("tcp", addr, 10*time.Second)
					if err != nil {
						failed.Add(1)
						return
					}
					conns[i] = c
					if d := int64(time.Since(s)); d > slowest.Load() {
						slowest.Store(d)
					}
				}()
			}
			wg.Wait()
			took := time.Since(t0)
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
			t.Logf("%s: %d connects at once in %v, slowest %v, %d failed", engine, n, took.Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond), failed.Load())
			if failed.Load() > 0 {
				t.Fatalf("%d of %d connects failed", failed.Load(), n)
			}
			if time.Duration(slowest.Load()) >= time.Second {
				t.Errorf("a connect took %v: a SYN was dropped from a full accept queue", time.Duration(slowest.Load()))
			}
		})
	}
}
