package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// scenario is one measurement of -compare.
type scenario struct {
	name string
	set  func(o *options)
	// value picks the number the table and chart show.
	value func(r *result) float64
	unit  string
}

func scenarios() []scenario {
	perSec := func(r *result) float64 { return r.PerSec }
	// The idle scenarios come first, on a fresh server: memory measured
	// after the others would reuse the heap they grew.
	return []scenario{
		{"idle: RSS per held connection", func(o *options) { o.mode, o.idle = "idle", 2000 }, func(r *result) float64 { return r.RSSPerConn }, "KiB"},
		{"idle: probe p99 with 2000 held", func(o *options) { o.mode, o.idle = "idle", 2000 }, func(r *result) float64 { return r.Latency.P99 }, "µs"},
		{"ask, 50 conns, pipeline 1", func(o *options) { o.mode, o.conns, o.pipeline = "ask", 50, 1 }, perSec, "req/s"},
		{"ask, 50 conns, pipeline 16", func(o *options) { o.mode, o.conns, o.pipeline = "ask", 50, 16 }, perSec, "req/s"},
		{"conn, 8 clients", func(o *options) { o.mode, o.conns = "conn", 8 }, func(r *result) float64 { return r.ConnsPerSec }, "conn/s"},
	}
}

// comparison is the outcome of -compare.
type comparison struct {
	Engines   []string             `json:"engines"`
	Scenarios []string             `json:"scenarios"`
	Units     []string             `json:"units"`
	Values    map[string][]float64 `json:"values"` // by engine, per scenario
	Results   map[string][]*result `json:"results"`
	Errors    map[string][]string  `json:"errors,omitempty"`
}

// runCompare starts zend with each engine on a free loopback port and runs
// every scenario against it.
func runCompare(ctx context.Context, base options, engines []string, zend, svg string, asJSON bool, stdout, stderr io.Writer) error {
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
	scs := scenarios()
	cmp := &comparison{Engines: engines, Values: map[string][]float64{}, Results: map[string][]*result{}, Errors: map[string][]string{}}
	for _, sc := range scs {
		cmp.Scenarios = append(cmp.Scenarios, sc.name)
		cmp.Units = append(cmp.Units, sc.unit)
	}
	for _, e := range engines {
		fmt.Fprintf(stderr, "zen-bench: engine %s\n", e)
		addr, pid, stop, err := startZend(zend, cfg.Name(), e)
		if err != nil {
			return err
		}
		var idleRes *result
		var idleErr error
		for _, sc := range scs {
			if ctx.Err() != nil {
				stop()
				return ctx.Err()
			}
			o := base
			o.addr, o.pid = addr, pid
			sc.set(&o)
			var r *result
			var err error
			if o.mode == "idle" && idleRes != nil {
				r, err = idleRes, idleErr // one idle run gives both idle numbers
			} else {
				r, err = run(ctx, o)
				if o.mode == "idle" {
					idleRes, idleErr = r, err
				}
			}
			msg := ""
			if err != nil {
				msg = err.Error()
				if strings.Contains(msg, "wrong answer") {
					stop()
					return err
				}
			}
			v := 0.0
			if r != nil {
				v = sc.value(r)
			}
			if err != nil && o.mode == "idle" {
				v = -1 // stalled: the engine could not serve the probe
			}
			cmp.Values[e] = append(cmp.Values[e], v)
			cmp.Results[e] = append(cmp.Results[e], r)
			cmp.Errors[e] = append(cmp.Errors[e], msg)
		}
		stop()
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

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startZend runs "zend run" with engine on a free loopback port.
func startZend(zend, cfg, engine string) (addr string, pid int, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	addr = ln.Addr().String()
	ln.Close()
	cmd := exec.Command(zend, "-c", cfg, "-listen", addr, "-engine", engine,
		"-set", "log.level=warn", "-set", "limits.max_connections=100000", "run")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() {
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
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			time.Sleep(100 * time.Millisecond) // let the test connection go
			return addr, cmd.Process.Pid, stop, nil
		}
	}
	stop()
	return "", 0, nil, fmt.Errorf("zend -engine %s did not listen on %s", engine, addr)
}

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
}

func cell(v float64, unit string) string {
	switch {
	case v < 0:
		return "stalled"
	case unit == "KiB":
		return fmt.Sprintf("%.2f", v)
	case unit == "µs":
		return fmt.Sprintf("%.0f", v)
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
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">zend engines, measured with zen-bench on this machine</text>`+"\n")
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
	if unit == "µs" || unit == "KiB" {
		return ", lower is better"
	}
	return ""
}
