package logsink

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"zend/config"

	"golang.org/x/sys/unix"
)

// sockDir is a short folder for sockets (sun_path holds 108 bytes, less
// than t.TempDir's names can be).
func sockDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "zl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// fakeSyslog is a datagram socket the test owns, standing in for /dev/log;
// ZEND_SYSLOG_SOCKET points the code at it.
func fakeSyslog(t *testing.T) *net.UnixConn {
	t.Helper()
	p := filepath.Join(sockDir(t), "log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv(config.EnvSyslogSocket, p)
	return c
}

func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64<<10)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// rx5424 is an RFC 5424 record with no MSGID and no structured data.
var rx5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\d+) - - (.*)$`)

// rx3164 is a record as syslog(3) writes it to /dev/log: PRI, the local
// time to the second, APP[PID]: and the message.
var rx3164 = regexp.MustCompile(`^<(\d{1,3})>([A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d) ([^ \[:]+)\[(\d+)\]: (.*)$`)

func TestSeverity(t *testing.T) {
	for _, tt := range []struct {
		l    slog.Level
		want int
	}{
		{slog.LevelDebug, 7}, {slog.LevelInfo, 6}, {slog.LevelInfo + 2, 5},
		{slog.LevelWarn, 4}, {slog.LevelError, 3}, {slog.LevelError + 4, 2},
	} {
		if got := severity(tt.l); got != tt.want {
			t.Errorf("severity(%v) = %d, want %d", tt.l, got, tt.want)
		}
	}
}

// TestSyslogSink logs through a sink with log.file = "syslog" and checks
// each datagram: framing, PRI = facility*8 + severity, host, app, pid and
// the message with its attributes.
func TestSyslogSink(t *testing.T) {
	srv := fakeSyslog(t)
	begun := time.Now().Truncate(time.Microsecond) // RFC 5424 keeps microseconds
	cfg := config.Default()
	cfg.Log.File, cfg.Log.Facility, cfg.Log.Level = "syslog", "local3", "debug"
	cfg.Log.SyslogFormat = config.SyslogRFC5424
	s := New(cfg, FilePath(cfg, ""), os.Stderr, true)
	log := s.Logger().With("conn", 7)
	log.Warn("before open", "n", 1) // kept until Open
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, _ := os.Hostname()
	check := func(pri int, msg string) {
		t.Helper()
		got := readDatagram(t, srv)
		m := rx5424.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("not RFC 5424: %q", got)
		}
		if m[1] != fmt.Sprint(pri) || m[3] != header(host, 255) || m[4] != "zend" || m[5] != fmt.Sprint(os.Getpid()) || m[6] != msg {
			t.Fatalf("record %q: pri %s host %s app %s pid %s msg %q; want pri %d msg %q", got, m[1], m[3], m[4], m[5], m[6], pri, msg)
		}
		// The record's time: when it was logged, between the start of
		// the test and its receipt (no clock bound of our own).
		if ts, err := time.Parse(time.RFC3339Nano, m[2]); err != nil || ts.Before(begun) || ts.After(time.Now()) {
			t.Fatalf("timestamp %s: %v; want one between %s and now", m[2], err, begun.Format(time.RFC3339Nano))
		}
	}
	check(19*8+4, "before open conn=7 n=1")
	log.Info("accepted", "client", "127.0.0.1:5")
	check(19*8+6, "accepted conn=7 client=127.0.0.1:5")
	log.Error("two\nlines", "reason", "a b\nc")
	check(19*8+3, `two lines conn=7 reason="a b\nc"`)
	s.Logger().Debug("dbg")
	check(19*8+7, "dbg")

	// The level and facility follow a reload; json prints the object.
	cfg.Log.Facility, cfg.Log.Format, cfg.Log.Level = "daemon", "json", "info"
	s.SetFormat(cfg.Log)
	log.Debug("hidden")
	log.WithGroup("g").Info("x", "k", "v")
	check(3*8+6, `{"msg":"x","conn":7,"g":{"k":"v"}}`)

	// SIGUSR1 reconnects; a syslog that went away and came back is
	// reconnected by the next record.
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	log.Info("after reopen")
	check(3*8+6, `{"msg":"after reopen","conn":7}`)

	// A reload to syslog(3)'s form: PRI, local time, zend[PID]: MSG.
	cfg.Log.SyslogFormat, cfg.Log.Format = config.SyslogRFC3164, "text"
	s.SetFormat(cfg.Log)
	before := time.Now().Truncate(time.Second)
	log.Warn("in 3164", "client", "127.0.0.1:5")
	got := readDatagram(t, srv)
	m := rx3164.FindStringSubmatch(got)
	if m == nil || m[1] != fmt.Sprint(3*8+4) || m[3] != "zend" || m[4] != fmt.Sprint(os.Getpid()) || m[5] != "in 3164 conn=7 client=127.0.0.1:5" {
		t.Fatalf("record %q, want <28>Mmm dd hh:mm:ss zend[%d]: in 3164 conn=7 client=127.0.0.1:5", got, os.Getpid())
	}
	// The stamp is the local time, to the second (the year is not in it).
	ts, err := time.ParseInLocation(time.Stamp, m[2], time.Local)
	if ts = ts.AddDate(before.Year(), 0, 0); err != nil || ts.Before(before) || ts.After(time.Now()) {
		t.Fatalf("stamp %q: %v; want the local time between %s and now", m[2], err, before.Format(time.Stamp))
	}
}

// TestTag: a program name becomes an RFC 3164 tag that a parser cannot
// cut early.
func TestTag(t *testing.T) {
	for _, tt := range []struct{ app, want string }{
		{"in-zen1", "in-zen1"}, // as is
		{"a b", "a_b"},         // a space would end it
		{"x[1]:", "x_1]_"},     // '[' starts the pid, ':' ends the tag
		{"", "-"},              // never empty
		{strings.Repeat("z", 40), strings.Repeat("z", 32)}, // RFC 3164: at most 32
	} {
		if got := tag(tt.app); got != tt.want {
			t.Errorf("tag(%q) = %q, want %q", tt.app, got, tt.want)
		}
	}
}

// TestSyslogSinkLosesAndSays: records sent while syslog is gone are
// counted, and the first one after it is back says how many were lost.
func TestSyslogSinkLosesAndSays(t *testing.T) {
	srv, log := syslogSink(t)
	path := os.Getenv(config.EnvSyslogSocket)
	srv.Close()
	os.Remove(path)
	log.Info("lost one")
	log.Info("lost two")
	srv2, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	log.Info("back")
	if got := readDatagram(t, srv2); !strings.HasSuffix(got, " back") {
		t.Fatalf("first record after: %q", got)
	}
	if got := readDatagram(t, srv2); !strings.Contains(got, "log records lost before this one lost=2") || !strings.HasPrefix(got, "<28>") {
		t.Fatalf("loss report: %q", got)
	}
}

// TestSyslogStream: a syslog listening on a stream socket gets one
// newline-terminated record per line.
func TestSyslogStream(t *testing.T) {
	p := filepath.Join(sockDir(t), "log")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv(config.EnvSyslogSocket, p)
	svc := newLogService("syslog", "in-zen1")
	if err := svc.open(); err != nil {
		t.Fatal(err)
	}
	defer svc.close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	svc.send(&entry{t: time.Now(), level: slog.LevelError, facility: 1, text: "one"})
	svc.send(&entry{t: time.Now(), level: slog.LevelInfo, facility: 1, text: "two", rfc5424: true})
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`^<11>[A-Z][a-z]{2} .* in-zen1\[\d+\]: one\n$`),
		regexp.MustCompile(`^<14>1 .* in-zen1 \d+ - - two\n$`),
	} {
		line, err := r.ReadString('\n')
		if err != nil || !want.MatchString(line) {
			t.Fatalf("line %q (%v), want prefix %q", line, err, want)
		}
	}
}

// TestJournalFields checks the entry the journal gets: MESSAGE text and
// the attributes as upper-case field names.
func TestJournalFields(t *testing.T) {
	var got *entry
	h := &serviceHandler{emit: func(e *entry) { got = e }, level: slog.LevelInfo, format: "json", facility: 3}
	slog.New(h).With("client", "1.2.3.4:5").WithGroup("tls").Warn("closed", "reason", "idle\ntimeout", "priority", 1, "2x", "y")
	want := [][2]string{{"CLIENT", "1.2.3.4:5"}, {"TLS_REASON", "idle\ntimeout"}, {"TLS_PRIORITY", "1"}, {"TLS_2X", "y"}}
	if got == nil || fmt.Sprint(got.fields) != fmt.Sprint(want) {
		t.Fatalf("fields %v, want %v", got.fields, want)
	}
	// text format: message first, bare.
	h.format = "text"
	slog.New(h).Info("accepted", "client", "x")
	if got.text != "accepted client=x" {
		t.Fatalf("text %q", got.text)
	}
	for in, want := range map[string]string{"_x": "ZEND__X", "9": "ZEND_9", "message": "ZEND_MESSAGE", "priority": "ZEND_PRIORITY", "a.b-c": "A_B_C", strings.Repeat("k", 70): strings.Repeat("K", 64)} {
		if got := journalField(nil, in); got != want {
			t.Errorf("journalField(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestInetdLogFallsBackToSyslog: an in-zen binary whose log file cannot be
// opened says so in syslog, under its own name.
func TestInetdLogFallsBackToSyslog(t *testing.T) {
	srv := fakeSyslog(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	bad := filepath.Join(dir, "file", "in-zen.log") // a folder that is a file
	log, ok := Inetd(bad, config.Default(), "in-zen1", nil)
	if !ok {
		t.Fatal("no log")
	}
	got := readDatagram(t, srv)
	if m := rx3164.FindStringSubmatch(got); m == nil || m[1] != "27" || m[3] != "in-zen1" ||
		!strings.HasPrefix(m[5], "cannot open the log file, logging to syslog instead file="+bad) {
		t.Fatalf("record %q", got)
	}
	log.Info("accepted")
	if got := readDatagram(t, srv); !strings.HasPrefix(got, "<30>") || !strings.HasSuffix(got, "]: accepted") {
		t.Fatalf("record %q", got)
	}
}

// TestSyslogStalledReader: a syslog that stops reading costs a record,
// never a wait. (Seen: each record waited 1 s, then 1 s more after a
// reconnect, under the sink's lock, so every connection that logged, and
// the event loop, stalled behind it.) Sends are given an hour here: a
// send that waits at all hangs the test.
func TestSyslogStalledReader(t *testing.T) {
	old := sendTimeout
	sendTimeout = time.Hour
	t.Cleanup(func() { sendTimeout = old })
	srv, log := syslogSink(t)
	const n = 3000 // more than a unix datagram queue holds (net.unix.max_dgram_qlen, 512 by default)
	for i := 0; i < n; i++ {
		log.Info("record", "i", i)
	}
	// The reader comes back: it finds what the queue held, then the
	// next record, then how many were lost in between.
	delivered := 0
	rc, err := srv.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64<<10)
	for more := true; more; {
		rc.Read(func(fd uintptr) bool {
			_, _, err := unix.Recvfrom(int(fd), b, unix.MSG_DONTWAIT)
			if more = err == nil; more {
				delivered++
			}
			return true
		})
	}
	log.Info("back")
	if got := readDatagram(t, srv); !strings.HasSuffix(got, " back") {
		t.Fatalf("first record after: %q", got)
	}
	got := readDatagram(t, srv)
	m := regexp.MustCompile(`log records lost before this one lost=(\d+) err="syslog socket full`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("loss report: %q (delivered %d of %d)", got, delivered, n)
	}
	if lost, _ := strconv.Atoi(m[1]); lost == 0 || lost+delivered != n {
		t.Fatalf("lost %d + delivered %d, want %d in all", lost, delivered, n)
	}
}

// syslogSink is an open sink with log.file = "syslog" on a socket the
// test owns, and its logger; closed when the test ends.
func syslogSink(t *testing.T) (*net.UnixConn, *slog.Logger) {
	t.Helper()
	srv := fakeSyslog(t)
	cfg := config.Default()
	cfg.Log.File = "syslog"
	s := New(cfg, "syslog", os.Stderr, false)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return srv, s.Logger()
}
