package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestZenBench runs the benchmark tool for short times against a real zend
// in every mode and checks what it reports.
func TestZenBench(t *testing.T) {
	p, addr := startZend(t, nil, "-engine", "eventloop")
	_ = p
	pid := strconv.Itoa(p.cmd.Process.Pid)
	for _, args := range [][]string{
		{"-mode", "ask", "-c", "8", "-pipeline", "4", "-loops", "2"},
		{"-mode", "conn", "-c", "4"},
		{"-mode", "idle", "-idle", "200"},
		{"-mode", "ask", "-c", "2", "-req", `Simple is better than?`, "-resp", "Complex."},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			out, errout, code := runBin(t, "zen-bench", nil, append(args, "-addr", addr, "-d", "500ms", "-pid", pid, "-json")...)
			if code != 0 {
				t.Fatalf("exit %d: %s %s", code, out, errout)
			}
			var r struct {
				Requests   uint64
				Errors     uint64
				PerSec     float64            `json:"requests_per_second"`
				ServerCPU  float64            `json:"server_cpu_us_per_request"`
				Latency    map[string]float64 `json:"latency_us"`
				RSSPerConn float64            `json:"server_rss_per_idle_connection_kb"`
				IdleConns  int                `json:"idle_connections"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			if r.Requests == 0 || r.Errors != 0 || r.PerSec <= 0 || r.ServerCPU <= 0 || r.Latency["P99"] <= 0 {
				t.Fatalf("result %+v", r)
			}
			if args[1] == "idle" && r.IdleConns != 200 {
				t.Fatalf("idle result %+v", r)
			}
		})
	}
}

// TestZenBenchFailsOnWrongAnswers: every answer is verified.
func TestZenBenchFailsOnWrongAnswers(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "zend.toml", "[answers]\n\"Beautiful is better than?\" = \"Pretty.\"\n")
	_, addr := startZend(t, nil, "-c", cfg, "-listen", "127.0.0.1:0")
	for _, mode := range []string{"ask", "conn"} {
		_, errout, code := runBin(t, "zen-bench", nil, "-mode", mode, "-addr", addr, "-c", "2", "-d", "300ms")
		if code != 1 || !strings.Contains(errout, "wrong answer") {
			t.Errorf("%s: exit %d, %q; want 1 and wrong answer", mode, code, errout)
		}
	}
	if _, _, code := runBin(t, "zen-bench", nil, "-mode", "nope"); code != 2 {
		t.Errorf("bad mode: exit %d, want 2", code)
	}
}

// TestZenBenchCompare starts zend per engine and writes the chart.
func TestZenBenchCompare(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "compare.svg")
	out, errout, code := runBin(t, "zen-bench", nil, "-compare", "-engines", "goroutine,eventloop", "-peers", "none", "-rounds", "1", "-d", "300ms", "-svg", svg)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errout)
	}
	for _, want := range []string{"goroutine", "eventloop", "pipeline 16", "RSS per held connection"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil || !strings.HasPrefix(string(b), "<svg") || !strings.Contains(string(b), "eventloop") {
		t.Fatalf("chart: %v %.100s", err, b)
	}
}

// TestZenBenchComparePeers: -compare puts redis and memcached in the same
// run as zend, each scenario once per round for every server, with the
// server's CPU and system calls per answer.
func TestZenBenchComparePeers(t *testing.T) {
	needSystem(t, "zen-bench -compare against the real redis-server and memcached")
	tool(t, "redis-server", "/usr/bin/redis-server")
	tool(t, "memcached", "/usr/bin/memcached")
	out, errout, code := runBin(t, "zen-bench", nil, "-compare", "-engines", "uring", "-rounds", "2", "-d", "300ms", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errout)
	}
	var cmp struct {
		Engines   []string                       `json:"engines"`
		Scenarios []string                       `json:"scenarios"`
		Values    map[string][]float64           `json:"values"`
		Results   map[string][][]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &cmp); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if fmt.Sprint(cmp.Engines) != "[uring redis memcached]" {
		t.Fatalf("columns %v, want uring, redis and memcached", cmp.Engines)
	}
	row := func(name string) int {
		for i, s := range cmp.Scenarios {
			if s == name {
				return i
			}
		}
		t.Fatalf("no row %q in %v", name, cmp.Scenarios)
		return -1
	}
	for _, e := range cmp.Engines {
		for _, r := range []string{"ask, 50 conns, pipeline 1", "ask, 50 conns, pipeline 1: server CPU", "ask, 50 conns, pipeline 1: server syscalls", "idle: RSS per held connection"} {
			if v := cmp.Values[e][row(r)]; v <= 0 {
				t.Errorf("%s: %s = %v", e, r, v)
			}
		}
		// Every non-idle scenario ran once per round; idle once.
		for k, rs := range cmp.Results[e] {
			want := 2
			if k == 0 {
				want = 1
			}
			if len(rs) != want {
				t.Errorf("%s: scenario %d ran %d times, want %d", e, k, len(rs), want)
			}
		}
	}
}
