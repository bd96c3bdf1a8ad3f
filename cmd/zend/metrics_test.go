package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMetrics scrapes a live zend and checks the exposition with the
// real promtool.
func TestMetrics(t *testing.T) {
	promtool := tool(t, "promtool", "/usr/bin/promtool")
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			maddr := freeAddr(t)
			cfg := writeFile(t, t.TempDir(), "zend.toml", "[access]\ndeny = [\"127.0.0.9\"]\n")
			p, addr := startZend(t, nil, "-c", cfg, "-listen", "127.0.0.1:0", "-engine", engine, "-set", "metrics.listen="+maddr)
			p.waitLog(t, `msg="serving metrics"`)
			client(t, addr)
			askOnce(t, addr, "Flat is better than nested?")
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}, Timeout: 5 * time.Second}
			if c, err := d.Dial("tcp", addr); err == nil {
				io.ReadAll(c)
				c.Close()
			}
			p.cmd.Process.Signal(syscall.SIGHUP)
			p.waitLog(t, `msg="configuration reloaded"`)
			resp, err := http.Get("http://" + maddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text := string(body)
			for _, want := range []string{
				`zend_answers_total{answer="Ugly."} 1`,
				`zend_unknown_questions_total 1`,
				`zend_refused_connections_total{reason="access"} 1`,
				`zend_reloads_total{result="ok"} 1`,
				`zend_question_duration_seconds_count 4`,
				`zend_connections_open 0`,
				`zend_build_info{engine="` + engine + `"`,
				`process_resident_memory_bytes`,
			} {
				if !strings.Contains(text, want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			if !regexp.MustCompile(`zend_connections_accepted_total [3-9]`).MatchString(text) {
				t.Errorf("accepted connections not counted:\n%s", text)
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Fatalf("promtool check metrics: %v\n%s", err, out)
			}
		})
	}
}

// TestMetricsCannotStarveMainPort (issue 11, item 7): clients of the
// metrics port, many more than zend has descriptors, must not take the main
// port down. zend runs under a 200-descriptor limit with all but a few of
// its (lowered) max_connections held by idle conversations; 300 keep-alive
// clients that each did one GET /metrics, and 50 that send nothing, hold
// the metrics port. New clients of the main port are still answered, zend
// never runs out of descriptors, and once the metrics clients go a scrape
// works again.
func TestMetricsCannotStarveMainPort(t *testing.T) {
	const (
		nofile   = 200
		probes   = 3   // fresh main-port clients at once: max_connections is reached
		rounds   = 3   // of probes
		scrapers = 300 // keep-alive metrics clients that did a GET
		silent   = 50  // metrics clients that send nothing
	)
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			maddr := freeAddr(t)
			p := start(t, "sh", nil, "-c", fmt.Sprintf("ulimit -n %d && exec %s -listen 127.0.0.1:0 -engine %s -set metrics.listen=%s run",
				nofile, filepath.Join(bin, "zend"), engine, maddr))
			addr := p.waitLog(t, `msg=listening addr=(\S+)`)[1]
			p.waitLog(t, `msg="zend ready"`)
			max, _ := strconv.Atoi(p.waitLog(t, `limits.max_connections does not fit.* now=(\d+)`)[1])
			if max <= probes {
				t.Fatalf("max_connections lowered to %d: no room for the test", max)
			}
			for i := 0; i < max-probes; i++ {
				if a := conversation(t, addr)("Simple is better than?"); a != "Complex." {
					t.Fatalf("held conversation %d answered %q", i, a)
				}
			}

			// The metrics clients, held until the test releases them.
			var (
				mconns    []net.Conn
				responded atomic.Int64
				readers   sync.WaitGroup
			)
			release := func() {
				for _, c := range mconns {
					c.Close()
				}
				mconns = nil
				readers.Wait()
			}
			t.Cleanup(release)
			for i := 0; i < scrapers; i++ {
				c, err := net.DialTimeout("tcp", maddr, 5*time.Second)
				if err != nil {
					t.Fatalf("metrics client %d: %v", i, err)
				}
				mconns = append(mconns, c)
				if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: zend\r\n\r\n"); err != nil {
					t.Fatalf("metrics client %d: %v", i, err)
				}
				readers.Add(1)
				go func() {
					defer readers.Done()
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						return // closed by the test
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					responded.Add(1) // and the connection stays open, idle
				}()
			}
			// Settled: zend has answered every metrics client it accepted,
			// and takes no more (the rest wait in the listen backlog).
			waitUntil(t, 30*time.Second, "the metrics port to stop accepting", func() (bool, string) {
				q, n := acceptQueue(t, maddr), responded.Load()
				return q > 0 && n == int64(scrapers-q), fmt.Sprintf("%d answered, %d in the backlog", n, q)
			})
			for i := 0; i < silent; i++ {
				c, err := net.DialTimeout("tcp", maddr, 5*time.Second)
				if err != nil {
					t.Fatalf("silent metrics client %d: %v", i, err)
				}
				mconns = append(mconns, c)
			}
			t.Logf("%s: max_connections %d, %d held; metrics clients: %d answered, %d waiting in the backlog",
				engine, max, max-probes, responded.Load(), acceptQueue(t, maddr))

			// The main port still answers, up to max_connections.
			for r := 0; r < rounds; r++ {
				var wg sync.WaitGroup
				errs := make(chan error, probes)
				for i := 0; i < probes; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs <- askFresh(addr, "Beautiful is better than?", "Ugly.")
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Errorf("round %d: main port: %v", r, err)
					}
				}
				if t.Failed() {
					t.Fatalf("the main port stopped answering; zend's log without INFO lines:\n%s", notInfo(p.log()))
				}
			}
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
			t.Logf("%s: %d of %d descriptors open with the metrics port saturated", engine, len(fds), nofile)
			if strings.Contains(p.log(), "too many open files") {
				t.Fatalf("zend ran out of descriptors; its log without INFO lines:\n%s", notInfo(p.log()))
			}

			// Once the metrics clients go, a scrape works.
			release()
			hc := &http.Client{Timeout: 10 * time.Second}
			defer hc.CloseIdleConnections()
			waitUntil(t, 30*time.Second, "a scrape after the metrics clients left", func() (bool, string) {
				resp, err := hc.Get("http://" + maddr + "/metrics")
				if err != nil {
					return false, err.Error()
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK && strings.Contains(string(body), "zend_connections_open "), resp.Status
			})
		})
	}
}

// notInfo returns the first 20 lines of log that are not at level INFO
// (zend logs every connection at INFO).
func notInfo(log string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if line != "" && !strings.Contains(line, "level=INFO") && len(out) < 20 {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// askFresh asks q on a new connection to addr and checks the answer.
func askFresh(addr, q, want string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, q); err != nil {
		return err
	}
	a, err := bufio.NewReader(c).ReadString('.')
	if err != nil {
		return fmt.Errorf("ask %q: %w", q, err)
	}
	if a != want {
		return fmt.Errorf("ask %q: answer %q, want %q", q, a, want)
	}
	return nil
}

// answersCounted scrapes the metrics on maddr and returns how many
// questions zend answered with answer: zend counts a question when it
// reads it, before any answer_delay, so this tells what it has read.
func answersCounted(maddr, answer string) (int, error) {
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^zend_answers_total\{answer="` + regexp.QuoteMeta(answer) + `"\} (\d+)$`).FindSubmatch(b)
	if m == nil {
		return 0, nil
	}
	return strconv.Atoi(string(m[1]))
}

// waitAnswersCounted waits until zend on maddr has read n questions
// answered with answer.
func waitAnswersCounted(t *testing.T, maddr, answer string, n int) {
	t.Helper()
	waitUntil(t, 20*time.Second, fmt.Sprintf("%d questions answered %q read", n, answer), func() (bool, string) {
		got, err := answersCounted(maddr, answer)
		return got >= n, fmt.Sprintf("%d (%v)", got, err)
	})
}

// waitUntil polls cond until it holds twice in a row, and fails the test
// if it does not within d; cond also describes what it saw.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	held, saw := 0, ""
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		var ok bool
		if ok, saw = cond(); !ok {
			held = 0
		} else if held++; held == 2 {
			return
		}
	}
	t.Fatalf("waited %v for %s; last saw: %s", d, what, saw)
}

// acceptQueue returns how many connections wait in the accept queue of
// the TCP listener on addr's port (rx_queue of a LISTEN socket in
// /proc/net/tcp).
func acceptQueue(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "0A" || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", pn)) {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		n, _ := strconv.ParseInt(rx, 16, 64)
		return int(n)
	}
	t.Fatalf("no listener on %s in /proc/net/tcp", addr)
	return 0
}
