package main

// The abuse modes measure what a misbehaving client costs the server,
// not how fast it answers:
//
//   - halfclose: one client with a 1 KiB receive buffer sends -n '?',
//     half-closes (shutdown SHUT_WR) and reads slowly; every answer must
//     arrive before the server closes. Reports the answers received and
//     the server's peak RSS (-pid).
//   - noread: -c clients each send 64 KiB of '?' and never read. Reports
//     the server's RSS (-pid) and the kernel's TCP memory
//     (/proc/net/sockstat, the whole machine's) before and once it is
//     steady.

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
	"syscall"
	"time"

	"zend/protocol"
)

// abuseResult is what an abuse mode measured.
type abuseResult struct {
	Mode         string  `json:"mode"`
	Addr         string  `json:"addr"`
	Conns        int     `json:"connections"`
	Questions    int     `json:"questions,omitempty"`
	Answers      int     `json:"answers,omitempty"`
	RSSBeforeKB  int64   `json:"server_rss_before_kib,omitempty"`
	RSSAfterKB   int64   `json:"server_rss_after_kib,omitempty"`
	PeakRSSKB    int64   `json:"server_peak_rss_kib,omitempty"`
	TCPMemBefore int64   `json:"tcp_mem_before_bytes,omitempty"`
	TCPMemAfter  int64   `json:"tcp_mem_after_bytes,omitempty"`
	Seconds      float64 `json:"seconds"`
}

func printAbuse(w io.Writer, r *abuseResult) {
	switch r.Mode {
	case "halfclose":
		fmt.Fprintf(w, "halfclose %s: %d answers for %d questions, %.1fs\n", r.Addr, r.Answers, r.Questions, r.Seconds)
	case "noread":
		fmt.Fprintf(w, "noread %s: %d connections that never read, %.1fs\n", r.Addr, r.Conns, r.Seconds)
		fmt.Fprintf(w, "  kernel TCP memory  %s -> %s (/proc/net/sockstat, whole machine)\n", mib(r.TCPMemBefore), mib(r.TCPMemAfter))
	}
	if r.PeakRSSKB > 0 {
		fmt.Fprintf(w, "  server RSS         %d -> %d KiB, peak %d KiB\n", r.RSSBeforeKB, r.RSSAfterKB, r.PeakRSSKB)
	}
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

// runHalfClose is the halfclose mode.
func runHalfClose(ctx context.Context, o options, n int) (*abuseResult, error) {
	r := &abuseResult{Mode: "halfclose", Addr: o.addr, Conns: 1, Questions: n, RSSBeforeKB: procRSS(o.pid)}
	start := time.Now()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
	}}
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	sent := make(chan error, 1)
	go func() {
		_, err := c.Write(bytes.Repeat([]byte("?"), n))
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	want := []byte(protocol.UnknownAnswer)
	buf := make([]byte, 1024)
	pos := 0 // where in want the next byte falls
	var got int
	for reads := 1; ; reads++ {
		k, err := c.Read(buf)
		for _, b := range buf[:k] {
			if b != want[pos] {
				return r, fmt.Errorf("answer %d is wrong at byte %d", got+1, pos)
			}
			if pos++; pos == len(want) {
				pos, got = 0, got+1
			}
		}
		if reads%64 == 0 {
			time.Sleep(time.Millisecond) // a slow reader
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r, fmt.Errorf("after %d answers: %w", got, err)
		}
	}
	r.Answers = got
	r.Seconds = time.Since(start).Seconds()
	r.RSSAfterKB, r.PeakRSSKB = procRSS(o.pid), procPeakRSS(o.pid)
	if err := <-sent; err != nil {
		return r, fmt.Errorf("send: %w", err)
	}
	if got != n || pos != 0 {
		return r, fmt.Errorf("%d answers (and %d bytes of one more) for %d questions", got, pos, n)
	}
	return r, nil
}

// runNoRead is the noread mode.
func runNoRead(ctx context.Context, o options) (*abuseResult, error) {
	raiseNoFile()
	r := &abuseResult{Mode: "noread", Addr: o.addr, Conns: o.conns, RSSBeforeKB: procRSS(o.pid), TCPMemBefore: tcpMem()}
	start := time.Now()
	payload := bytes.Repeat([]byte("?"), 64<<10)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	done := make(chan struct{}, o.conns)
	for i := 0; i < o.conns; i++ {
		c, err := net.DialTimeout("tcp", o.addr, 5*time.Second)
		if err != nil {
			return r, fmt.Errorf("connection %d: %w", i+1, err)
		}
		conns = append(conns, c)
		go func() {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(payload) // stops when the server stops reading
			done <- struct{}{}
		}()
	}
	for range conns {
		select {
		case <-done:
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
	// Steady: the kernel's TCP memory stops moving.
	last := tcpMem()
	for i := 0; i < 30; i++ {
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return r, ctx.Err()
		}
		now := tcpMem()
		if now == last {
			break
		}
		last = now
	}
	r.TCPMemAfter = last
	r.RSSAfterKB, r.PeakRSSKB = procRSS(o.pid), procPeakRSS(o.pid)
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// tcpMem is the kernel's TCP memory in bytes, from /proc/net/sockstat
// ("TCP: ... mem PAGES"); 0 where there is none.
func tcpMem() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "mem" {
				pages, _ := strconv.ParseInt(f[i+1], 10, 64)
				return pages * int64(os.Getpagesize())
			}
		}
	}
	return 0
}
