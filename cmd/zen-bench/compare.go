package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// scenario is one load of -compare, and the rows of the table it gives.
type scenario struct {
	name string
	set  func(o *options)
	rows []row
	idle bool // measured once per target, on a fresh server, before the rest
}

// row is one number of a scenario's result.
type row struct {
	name  string
	value func(r *result) float64
	unit  string
}

func scenarios() []scenario {
	perSec := row{"", func(r *result) float64 { return r.PerSec }, "req/s"}
	cpu := row{": server CPU", func(r *result) float64 { return r.ServerCPU }, "µs/req"}
	calls := row{": server syscalls", func(r *result) float64 { return r.ServerCalls }, "per req"}
	return []scenario{
		{"idle", func(o *options) { o.mode, o.idle = "idle", 2000 }, []row{
			{": RSS per held connection", func(r *result) float64 { return r.RSSPerConn }, "KiB"},
			{": probe p99 with 2000 held", func(r *result) float64 { return r.Latency.P99 }, "µs"},
		}, true},
		{"ask, 50 conns, pipeline 1", func(o *options) { o.mode, o.conns, o.pipeline = "ask", 50, 1 }, []row{perSec, cpu, calls}, false},
		{"ask, 50 conns, pipeline 16", func(o *options) { o.mode, o.conns, o.pipeline = "ask", 50, 16 }, []row{perSec, cpu, calls}, false},
		{"conn, 8 clients", func(o *options) { o.mode, o.conns = "conn", 8 }, []row{{"", func(r *result) float64 { return r.ConnsPerSec }, "conn/s"}}, false},
	}
}

// comparison is the outcome of -compare: one column per target (a zend
// engine, or a peer server), one value per row, the median of the
// rounds.
type comparison struct {
	Engines   []string               `json:"engines"` // the targets, in column order
	Scenarios []string               `json:"scenarios"`
	Units     []string               `json:"units"`
	Rounds    int                    `json:"rounds"`
	Calls     string                 `json:"syscalls_counted_by,omitempty"`
	Values    map[string][]float64   `json:"values"` // by target, per row
	Results   map[string][][]*result `json:"results"`
	Errors    map[string][]string    `json:"errors,omitempty"`
}

// target is one server -compare measures.
type target struct {
	name      string
	req, resp string // the peer's request and its exact reply; "" for zend
	addr      string
	pid       int
	stop      func()
}

// peerCmd returns the command line of a peer server on port, or nil when
// it is not installed.
func peerCmd(name string, port int) []string {
	bin := map[string]string{"redis": "redis-server", "memcached": "memcached"}[name]
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil
	}
	p := strconv.Itoa(port)
	if name == "redis" {
		return []string{path, "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients", "20000", "--loglevel", "warning"}
	}
	return []string{path, "-u", "nobody", "-l", "127.0.0.1", "-p", p, "-U", "0", "-c", "20000"}
}

// startTarget starts zend with an engine, or a peer, on a free loopback
// port.
func startTarget(zend, cfg, name string) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	t := &target{name: name, addr: addr}
	var argv []string
	switch name {
	case "redis":
		argv, t.req, t.resp = peerCmd(name, port), "PING\r\n", "+PONG\r\n"
	case "memcached":
		argv, t.req = peerCmd(name, port), "version\r\n"
	default:
		argv = []string{zend, "-c", cfg, "-listen", addr, "-engine", name,
			"-set", "log.level=warn", "run"}
	}
	if argv == nil {
		return nil, fmt.Errorf("%s is not installed", name)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t.pid = cmd.Process.Pid
	t.stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			continue
		}
		if name == "memcached" { // its reply names its version
			fmt.Fprint(c, "version\r\n")
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 64)
			n, _ := c.Read(b)
			t.resp = string(b[:n])
		}
		c.Close()
		time.Sleep(100 * time.Millisecond) // let the test connection go
		return t, nil
	}
	t.stop()
	return nil, fmt.Errorf("%s did not listen on %s", name, addr)
}

// runCompare starts every target (zend with each engine, and the peers
// that are installed) and measures each scenario on each. The idle
// scenario runs first on every fresh server; then each round runs every
// other scenario on every target in turn, starting one target further
// each round, so that the machine's noise hits all alike; the table
// shows the medians.
func runCompare(ctx context.Context, base options, engines, peers []string, rounds int, zend, svg string, asJSON bool, stdout, stderr io.Writer) error {
	if zend == "" {
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "zend"); fileExists(p) {
				zend = p
			}
		}
		if zend == "" {
			p, err := exec.LookPath("zend")
			if err != nil {
				return fmt.Errorf("no zend binary beside zen-bench or in $PATH: give -zend PATH")
			}
			zend = p
		}
	}
	cfg, err := os.CreateTemp("", "zen-bench-*.toml")
	if err != nil {
		return err
	}
	cfg.Close()
	defer os.Remove(cfg.Name())
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	names := append([]string(nil), engines...)
	for _, p := range peers {
		if peerCmd(p, 1) == nil {
			fmt.Fprintf(stderr, "zen-bench: %s is not installed: no %s column\n", p, p)
			continue
		}
		names = append(names, p)
	}
	for _, n := range names {
		t, err := startTarget(zend, cfg.Name(), n)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	scs := scenarios()
	cmp := &comparison{Rounds: rounds, Values: map[string][]float64{}, Results: map[string][][]*result{}, Errors: map[string][]string{}}
	for _, sc := range scs {
		for _, r := range sc.rows {
			cmp.Scenarios = append(cmp.Scenarios, sc.name+r.name)
			cmp.Units = append(cmp.Units, r.unit)
		}
	}
	// results[target][scenario] holds one result per round.
	results := map[string][][]*result{}
	errs := map[string][]string{}
	for _, t := range targets {
		cmp.Engines = append(cmp.Engines, t.name)
		results[t.name] = make([][]*result, len(scs))
		errs[t.name] = make([]string, len(scs))
	}
	measure := func(t *target, k int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o := base
		o.addr, o.pid, o.req, o.resp = t.addr, t.pid, t.req, t.resp
		scs[k].set(&o)
		fmt.Fprintf(stderr, "zen-bench: %s: %s\n", t.name, scs[k].name)
		r, err := run(ctx, o)
		if err != nil {
			if errors.Is(err, errWrong) {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			errs[t.name][k] = err.Error()
			if o.mode == "idle" {
				r = nil // stalled: the engine could not serve the probe
			}
		}
		results[t.name][k] = append(results[t.name][k], r)
		return nil
	}
	for k, sc := range scs {
		if sc.idle {
			for _, t := range targets {
				if err := measure(t, k); err != nil {
					return err
				}
			}
		}
	}
	for round := 0; round < rounds; round++ {
		for k, sc := range scs {
			if sc.idle {
				continue
			}
			for i := range targets {
				if err := measure(targets[(i+round)%len(targets)], k); err != nil {
					return err
				}
			}
		}
	}
	for _, t := range targets {
		for k, sc := range scs {
			for _, rw := range sc.rows {
				cmp.Values[t.name] = append(cmp.Values[t.name], median(results[t.name][k], rw.value))
			}
			for _, r := range results[t.name][k] {
				if r != nil && r.CallsSource != "" {
					cmp.Calls = r.CallsSource
				}
			}
		}
		cmp.Results[t.name] = results[t.name]
		cmp.Errors[t.name] = errs[t.name]
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(cmp)
	} else {
		printComparison(stdout, cmp)
	}
	if svg != "" {
		if err := os.WriteFile(svg, []byte(chart(cmp)), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "zen-bench: chart written to %s\n", svg)
	}
	return nil
}

// median is the median of value over the rounds' results; -1 when the
// server stalled in any of them (nil).
func median(rs []*result, value func(*result) float64) float64 {
	var vs []float64
	for _, r := range rs {
		if r == nil {
			return -1
		}
		vs = append(vs, value(r))
	}
	if len(vs) == 0 {
		return 0
	}
	sort.Float64s(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2
	}
	return vs[len(vs)/2]
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func printComparison(w io.Writer, c *comparison) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scenario\t")
	for _, e := range c.Engines {
		fmt.Fprintf(tw, "%s\t", e)
	}
	fmt.Fprintln(tw, "unit\t")
	for i, s := range c.Scenarios {
		fmt.Fprintf(tw, "%s\t", s)
		for _, e := range c.Engines {
			fmt.Fprintf(tw, "%s\t", cell(c.Values[e][i], c.Units[i]))
		}
		fmt.Fprintf(tw, "%s\t\n", c.Units[i])
	}
	tw.Flush()
	fmt.Fprintf(w, "(medians of %d round(s); syscalls counted by %s)\n", c.Rounds, callsBy(c.Calls))
}

func callsBy(src string) string {
	switch src {
	case "perf":
		return "perf, raw_syscalls:sys_enter"
	case "proc-io":
		return "/proc/PID/io syscr+syscw: read- and write-like calls only, no epoll_wait or io_uring_enter; mount tracefs for perf"
	}
	return "nothing: no perf, no /proc"
}

func cell(v float64, unit string) string {
	switch {
	case v < 0:
		return "stalled"
	case unit == "KiB":
		return fmt.Sprintf("%.2f", v)
	case unit == "µs":
		return fmt.Sprintf("%.0f", v)
	case unit == "µs/req" || unit == "per req":
		return fmt.Sprintf("%.2f", v)
	}
	return human(v)
}

// chart draws one group of horizontal bars per scenario.
func chart(c *comparison) string {
	const barH, gap, left, width = 18, 6, 190, 420
	colors := []string{"#9e9e9e", "#7986cb", "#4db6ac", "#e57373", "#ffb74d"}
	var b strings.Builder
	h := 30 + len(c.Scenarios)*(len(c.Engines)*(barH+2)+gap+22)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+width+120, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">zend engines and peers, measured with zen-bench on this machine</text>`+"\n")
	y := 40
	for i, s := range c.Scenarios {
		top := 0.0
		for _, e := range c.Engines {
			top = max(top, c.Values[e][i])
		}
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s (%s%s)</text>`+"\n", y+10, html.EscapeString(s), c.Units[i], lowerBetter(c.Units[i]))
		y += 16
		for k, e := range c.Engines {
			v := c.Values[e][i]
			wd := 0.0
			if top > 0 && v > 0 {
				wd = v / top * width
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-6, y+13, e)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, left, y, wd, barH, colors[k%len(colors)])
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(left)+wd+6, y+13, cell(v, c.Units[i]))
			y += barH + 2
		}
		y += gap + 6
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func lowerBetter(unit string) string {
	if unit == "µs" || unit == "KiB" || unit == "µs/req" || unit == "per req" {
		return ", lower is better"
	}
	return ""
}
