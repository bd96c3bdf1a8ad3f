// Command zen-bench measures a Zen-protocol server (or any request/reply
// server) with the same generator for everyone.
//
//	zen-bench [-mode ask|conn|idle|halfclose|noread] [-addr HOST:PORT] [-c N] [-pipeline N] [-d DURATION]
//	          [-req STR -resp STR] [-pid PID] [-idle N] [-drip D] [-json]
//	zen-bench -compare [-engines LIST] [-peers LIST] [-rounds N] [-zend PATH] [-d DURATION] [-svg FILE] [-json]
//
// Every answer is verified: a wrong one fails the run (exit 1).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"zend/config"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	os.Exit(exitCode(runMain(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "zen-bench:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const usage = `usage: zen-bench [flags]

Modes (-mode):
  ask    persistent connections asking -pipeline questions per round trip
  conn   connect, ask the three questions one at a time, hang up (the chapter's client)
  idle   hold -idle connections (idle, or sending a byte every -drip) while a
         probe client asks one question at a time and its latency is measured
  halfclose  one client with a 1 KiB receive buffer sends -n '?', half-closes and
         reads slowly: every answer must arrive (with -pid: the server's peak RSS)
  noread -c clients each send 64 KiB of '?' and never read: the server's RSS
         (-pid) and the kernel's TCP memory (/proc/net/sockstat) before and after

Flags:
  -addr HOST:PORT   server (default 127.0.0.1:1060)
  -c N              connections (default 50)
  -pipeline N       questions per round trip in ask mode (default 1)
  -loops N          ask mode: epoll loops (threads) driving the connections (default 1;
                    Linux: elsewhere each connection has a goroutine)
  -d DURATION       how long to measure (default 10s)
  -req STR -resp STR  a raw request and its exact reply instead of the Zen
                    questions, with Go escapes: -req 'PING\r\n' -resp '+PONG\r\n'
  -pid PID          the server's pid: report its CPU time per request and,
                    in idle mode, its memory per connection
  -idle N           idle mode: connections to hold (default 1000)
  -n N              halfclose mode: questions to send (default 1000000)
  -drip D           idle mode: each held connection sends a byte every D
  -json             print the result as JSON
  -compare          start zend with each engine, and the peers, and compare
                    them: the idle scenario first on each fresh server, then
                    -rounds rounds of the others, each round through every
                    server in turn (starting one further on), medians shown;
                    answers/s, server CPU and server system calls per answer
                    (counted with perf when tracefs is mounted, else
                    /proc/PID/io's read and write calls)
  -engines LIST     with -compare (default: every engine of this system but
                    auto: single,pool,goroutine and, on Linux, eventloop,uring)
  -peers LIST       with -compare: peer servers to add when installed, asked
                    PING (redis-server) and version (memcached); default
                    redis,memcached; none for none
  -rounds N         with -compare: rounds (default 3)
  -zend PATH        with -compare: the zend binary (default: beside zen-bench, else $PATH)
  -svg FILE         with -compare: also write the comparison as an SVG chart
`

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("zen-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.mode, "mode", "ask", "")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:1060", "")
	fs.IntVar(&o.conns, "c", 50, "")
	fs.IntVar(&o.pipeline, "pipeline", 1, "")
	fs.IntVar(&o.loops, "loops", 1, "")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "")
	fs.StringVar(&o.req, "req", "", "")
	fs.StringVar(&o.resp, "resp", "", "")
	fs.IntVar(&o.pid, "pid", 0, "")
	fs.IntVar(&o.idle, "idle", 1000, "")
	fs.DurationVar(&o.drip, "drip", 0, "")
	questions := fs.Int("n", 1000000, "")
	asJSON := fs.Bool("json", false, "")
	compare := fs.Bool("compare", false, "")
	engines := fs.String("engines", strings.Join(compareEngines(), ","), "")
	peers := fs.String("peers", "redis,memcached", "")
	rounds := fs.Int("rounds", 3, "")
	zend := fs.String("zend", "", "")
	svg := fs.String("svg", "", "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stdout, usage)
			return nil
		}
		fmt.Fprint(stderr, usage)
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{"unexpected argument " + fs.Arg(0)}
	}
	switch {
	case o.mode != "ask" && o.mode != "conn" && o.mode != "idle" && o.mode != "halfclose" && o.mode != "noread":
		return &usageError{"-mode " + o.mode + ": allowed are ask, conn, idle, halfclose, noread"}
	case o.conns < 1 || o.pipeline < 1 || o.duration <= 0 || o.idle < 0 || *questions < 1:
		return &usageError{"-c, -n, -pipeline and -d must be positive"}
	case (o.req == "") != (o.resp == ""):
		return &usageError{"-req and -resp go together"}
	}
	var err error
	if o.req, err = unescape(o.req); err != nil {
		return &usageError{"-req: " + err.Error()}
	}
	if o.resp, err = unescape(o.resp); err != nil {
		return &usageError{"-resp: " + err.Error()}
	}
	if isTerminal(stderr) && !*asJSON {
		o.progress = stderr
	}
	if *compare {
		var ps []string
		if *peers != "" && *peers != "none" {
			ps = strings.Split(*peers, ",")
		}
		for _, p := range ps {
			if p != "redis" && p != "memcached" {
				return &usageError{"-peers " + p + ": allowed are redis, memcached, none"}
			}
		}
		if *rounds < 1 {
			return &usageError{"-rounds must be positive"}
		}
		return runCompare(ctx, o, strings.Split(*engines, ","), ps, *rounds, *zend, *svg, *asJSON, stdout, stderr)
	}
	if o.mode == "halfclose" || o.mode == "noread" {
		var r *abuseResult
		if o.mode == "halfclose" {
			r, err = runHalfClose(ctx, o, *questions)
		} else {
			r, err = runNoRead(ctx, o)
		}
		if r != nil {
			emit(stdout, *asJSON, r, func() { printAbuse(stdout, r) })
		}
		return err
	}
	r, err := run(ctx, o)
	if r != nil {
		emit(stdout, *asJSON, r, func() { printResult(stdout, r) })
	}
	return err
}

// emit writes a result as indented JSON, or as text with print.
func emit(w io.Writer, asJSON bool, v any, print func()) {
	if !asJSON {
		print()
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func unescape(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}

func printResult(w io.Writer, r *result) {
	fmt.Fprintf(w, "%s %s: %d connections", r.Mode, r.Addr, r.Conns)
	if r.Mode == "ask" {
		fmt.Fprintf(w, ", pipeline %d", r.Pipeline)
	}
	if r.Mode == "idle" {
		fmt.Fprintf(w, " probing while %d connections are held", r.IdleConns)
	}
	fmt.Fprintf(w, ", %.1fs\n", r.Seconds)
	fmt.Fprintf(w, "  requests   %d (%s/s), errors %d\n", r.Requests, human(r.PerSec), r.Errors)
	if r.ConnsPerSec > 0 {
		fmt.Fprintf(w, "  conns      %d (%s/s)\n", r.ConnsDone, human(r.ConnsPerSec))
	}
	l := r.Latency
	fmt.Fprintf(w, "  latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s (per round trip)\n", us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
	fmt.Fprintf(w, "  cpu        client %.2f µs/request", r.ClientCPU)
	if r.ServerCPU > 0 {
		fmt.Fprintf(w, ", server %.2f µs/request", r.ServerCPU)
	}
	fmt.Fprintln(w)
	if r.ServerCalls > 0 {
		fmt.Fprintf(w, "  syscalls   server %.2f per request (%s)\n", r.ServerCalls, r.CallsSource)
	}
	if r.RSSPerConn != 0 {
		fmt.Fprintf(w, "  memory     server RSS %d -> %d KiB: %.2f KiB per held connection\n", r.RSSBeforeKB, r.RSSAfterKB, r.RSSPerConn)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
	}
}

func us(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "s"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "µs"
}

// compareEngines are -compare's default engines: this system's, but auto
// (which is one of them).
func compareEngines() []string {
	var es []string
	for _, e := range config.Engines {
		if e != "auto" {
			es = append(es, e)
		}
	}
	return es
}
