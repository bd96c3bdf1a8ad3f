package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Levels are the allowed values of log.level.
var Levels = []string{"debug", "info", "warn", "error"}

// Formats are the allowed values of log.format.
var Formats = []string{"text", "json"}

// The allowed values of log.syslog_format. SyslogRFC3164 is the form
// syslog(3) writes to /dev/log, "<PRI>Mmm dd hh:mm:ss APP[PID]: MSG", the
// one rsyslog's and systemd-journald's /dev/log parse as shipped;
// SyslogRFC5424 is "<PRI>1 TIMESTAMP HOST APP PROCID - - MSG", for a
// syslog daemon set up to parse it (rsyslog's imuxsock with
// SysSock.UseSpecialParser="off").
const (
	SyslogRFC3164 = "rfc3164"
	SyslogRFC5424 = "rfc5424"
)

// SyslogFormats are the allowed values of log.syslog_format.
var SyslogFormats = []string{SyslogRFC3164, SyslogRFC5424}

// Facilities are the allowed values of log.facility, the syslog facility
// of records sent to syslog or the journal, by their RFC 5424 numbers.
// kern (0) is left out: only the kernel logs there.
var Facilities = []string{
	"user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
}

// FacilityCode returns the RFC 5424 number of a facility of Facilities,
// and daemon's (3) for any other name.
func FacilityCode(name string) int {
	for i, f := range Facilities {
		if f == name {
			if i >= 11 { // local0 is 16
				return i + 5
			}
			return i + 1
		}
	}
	return 3
}

// MaxQuestionBytesLimit is the largest allowed limits.max_question_bytes:
// zend buffers up to that much of an unfinished question per connection,
// so with the default 10,000 connections 64 KiB is at most 640 MiB (1 MiB
// was 10 GiB), the same as the engines' 64 KiB of unsent answers; a
// question is one sentence (the built-in ones are under 30 bytes).
const MaxQuestionBytesLimit = 64 << 10

// maxTimeout is the longest limits.*_timeout. The event loop adds a
// timeout to nanoseconds since its start in an int64: near Go's largest
// duration (2562047h) that sum overflows after 47 minutes of uptime and
// every connection looks timed out. A day is far beyond any useful
// timeout (TCP keepalive's default is 2h) or drain.
const maxTimeout = 24 * time.Hour

// The log rotation keys are bounded where 0 already says "no limit", so a
// bound only catches mistakes, and below where lumberjack overflows: it
// computes max_size_mb << 20 and 24h x max_age_days in an int64, and an
// age past 106,751 days wraps to a cutoff in the future, which deletes
// every rotated file.
const (
	maxLogSizeMB  = 1 << 20 // 1 TiB
	maxLogBackups = 10000
	maxLogAgeDays = 3650 // ten years
)

// maxListen is the most server.listen addresses: each is a listener, with
// a file descriptor, an accept loop (server.workers of them on pool) and a
// registration in every event loop, and ":1060" already listens on every
// interface.
const maxListen = 64

// maxBacklog is the largest server.backlog: Linux uses at most
// net.core.somaxconn, and kernels before 4.1 keep a backlog in 16 bits,
// where a larger value wraps (Go's net package cuts it to 65535 for them).
const maxBacklog = 65535

// maxConnections is the largest limits.max_connections: Linux's default
// fs.nr_open, the most file descriptors one process can have, and each
// connection is one. (The daemon lowers the value further to fit its
// RLIMIT_NOFILE.)
const maxConnections = 1 << 20

// maxAcceptRatePerIP is the largest limits.accept_rate_per_ip: a client
// address has 65,535 ports, so it cannot open more connections than that
// to one listen address in a second; a larger rate is never reached.
const maxAcceptRatePerIP = 65535

// The bounds of limits.send_buffer: below 4 KiB a single write of a batch
// of answers takes many round trips; above 4 MiB a connection that does
// not read holds megabytes of kernel memory (the kernel doubles the value
// for its bookkeeping).
const (
	minSendBuffer = 4 << 10
	maxSendBuffer = 4 << 20
)

// server.workers is bounded by the machine: workersPerCPU per CPU, at least
// workersFloor, never above workersCap. An eventloop worker is an OS thread
// (locked to its epoll loop) with two file descriptors and a 16 KiB read
// buffer; a pool worker holds one conversation. One loop per CPU is the
// design, so more than a few per CPU only adds context switches; the floor
// lets a pool serve a classroom of clients on a small machine; the cap
// stays a tenth of the 10,000 threads past which Go aborts the process
// (runtime/debug.SetMaxThreads), leaving room for threads blocked in
// system calls.
const (
	workersPerCPU = 4
	workersFloor  = 64
	workersCap    = 1024
)

// MaxWorkers returns the largest server.workers allowed on this machine.
func MaxWorkers() int { return maxWorkersFor(runtime.NumCPU()) }

func maxWorkersFor(cpus int) int {
	return min(workersCap, max(workersFloor, workersPerCPU*cpus))
}

// [answers] is bounded in the length of an answer and in the number of
// questions. An answer is copied out for every question that asks it,
// and a conversation frames questions only while less than a 32 KiB batch
// of answers waits: with answers of at most 1 KiB one connection holds at
// most 33 KiB of answers, whatever it asks; a period-terminated sentence of
// the protocol is far shorter (the built-in answers are under 30 bytes).
// Each question holds up to limits.max_question_bytes, and its answer a
// counter and a metrics label: 1000 of them are kept in memory once, not
// per connection.
const (
	maxAnswerBytes = 1024
	maxAnswers     = 1000
)

// Validate checks every value and returns nil, or an error matching
// ErrInvalid that lists each problem with where the value came from (file
// and line, environment variable or flag), the key, and what is allowed.
func (c *Config) Validate() error {
	var errs []error
	// badAt reports a problem with key, written as shown.
	badAt := func(key, shown, format string, args ...any) {
		e := c.Problem(key, format, args...)
		e.Key = shown
		errs = append(errs, e)
	}
	bad := func(key, format string, args ...any) { badAt(key, key, format, args...) }

	if len(c.Server.Listen) == 0 {
		bad("server.listen", "empty: allowed is a list of one or more \"host:port\" addresses such as [\"127.0.0.1:1060\", \"[::1]:1060\"]")
	}
	if len(c.Server.Listen) > maxListen {
		bad("server.listen", "%d addresses: allowed is 1 to %d (each is a listener; \":1060\" listens on every interface)", len(c.Server.Listen), maxListen)
	}
	for _, a := range c.Server.Listen {
		if err := checkAddr(a); err != nil {
			bad("server.listen", "%q: %v", a, err)
		}
	}
	if err := checkOverlap(c.Server.Listen); err != nil {
		bad("server.listen", "%v", err)
	}
	if !oneOf(c.Server.Engine, Engines) {
		bad("server.engine", "unknown engine %q: %s", c.Server.Engine, enginesAllowed(c.Server.Engine))
	}
	if mw := MaxWorkers(); c.Server.Workers < 0 || c.Server.Workers > mw {
		bad("server.workers", "%d: allowed is 0 (automatic: 4 for pool, one loop per two CPUs for eventloop and uring) to %d on this machine (%d per CPU for its %d CPUs, but no less than %d and no more than %d: each eventloop worker is an OS thread)",
			c.Server.Workers, mw, workersPerCPU, runtime.NumCPU(), workersFloor, workersCap)
	}
	if c.Server.AnswerDelay < 0 || c.Server.AnswerDelay.D() > time.Minute {
		bad("server.answer_delay", "%s: allowed is 0s to 1m", c.Server.AnswerDelay.D())
	}
	if c.Server.Backlog < 0 || c.Server.Backlog > maxBacklog {
		bad("server.backlog", "%d: allowed is 0 (the system maximum, net.core.somaxconn) to %d (the kernel uses at most net.core.somaxconn, and older kernels wrap a larger value)", c.Server.Backlog, maxBacklog)
	}

	for _, p := range c.Server.ProxyTrusted {
		if _, err := ParsePrefix(p); err != nil {
			bad("server.proxy_trusted", "%v", err)
		}
	}
	if c.Server.ProxyProtocol && len(c.Server.ProxyTrusted) == 0 {
		bad("server.proxy_protocol", "true without server.proxy_trusted: allowed is a list of the proxies' addresses or CIDRs, such as [\"127.0.0.1\"], whose headers are believed")
	}
	for _, key := range []string{"access.allow", "access.deny"} {
		list := c.Access.Allow
		if key == "access.deny" {
			list = c.Access.Deny
		}
		for _, p := range list {
			if _, err := ParsePrefix(p); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	if c.Metrics.Listen != "" {
		if err := checkAddr(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%q: %v (or \"\" for no metrics)", c.Metrics.Listen, err)
		}
	}
	// A per-source limit above what the whole server holds is never
	// reached: limits.max_connections on the engines that apply it (when
	// it is valid itself), else its own bound.
	perIP, perIPMax, perIPOf := c.Limits.MaxConnectionsPerIP, maxConnections, "as limits.max_connections"
	if n := c.Limits.MaxConnections; c.Server.Engine != "single" && c.Server.Engine != "pool" && n >= 1 && n <= maxConnections {
		perIPMax, perIPOf = n, "limits.max_connections"
	}
	if perIP < 0 || perIP > perIPMax {
		bad("limits.max_connections_per_ip", "%d: allowed is 0 (no limit) to %d (%s): a larger limit is never reached", perIP, perIPMax, perIPOf)
	}
	if b := c.Limits.SendBuffer; b != 0 && (b < minSendBuffer || b > maxSendBuffer) {
		bad("limits.send_buffer", "%d: allowed is 0 (the kernel's autotuning, up to net.ipv4.tcp_wmem's maximum per connection) or %d to %d bytes", b, minSendBuffer, maxSendBuffer)
	}
	if c.Limits.AcceptRatePerIP < 0 || c.Limits.AcceptRatePerIP > maxAcceptRatePerIP {
		bad("limits.accept_rate_per_ip", "%d: allowed is 0 (no limit) to %d new connections a second: one client address has no more ports to open them from", c.Limits.AcceptRatePerIP, maxAcceptRatePerIP)
	}
	if c.Limits.IPv6Prefix < 1 || c.Limits.IPv6Prefix > 128 {
		bad("limits.ipv6_prefix", "%d: allowed is 1 to 128, the leading bits of an IPv6 client address that name its source for the per-source limits (64: a host's usual /64; 128: each address)", c.Limits.IPv6Prefix)
	}

	switch p := c.Daemon.Pidfile; {
	case p == "":
		bad("daemon.pidfile", "empty: allowed is a file path such as \"/run/zend/zend.pid\"")
	case strings.HasSuffix(p, "/") || filepath.Base(p) == "." || filepath.Base(p) == "..":
		bad("daemon.pidfile", "%q names a folder: allowed is a file path such as \"/run/zend/zend.pid\"", p)
	case strings.HasSuffix(p, ".lock") || strings.HasSuffix(p, ".sock"):
		bad("daemon.pidfile", "%q: the lock (.lock) and the control socket (.sock) take the pidfile's name: allowed is a name ending in .pid, such as \"/run/zend/zend.pid\"", p)
	}
	if p := c.Log.File; strings.HasSuffix(p, "/") || p != "" && p != "-" && (filepath.Base(p) == "." || filepath.Base(p) == "..") {
		bad("log.file", "%q names a folder: allowed is a file path such as \"/var/log/zend/zend.log\", \"-\" for stderr, \"syslog\" or \"journal\"", p)
	}
	if _, err := ParseUmask(c.Daemon.Umask); err != nil {
		bad("daemon.umask", "%v", err)
	}
	if c.Daemon.Group != "" && c.Daemon.User == "" {
		bad("daemon.group", "set without daemon.user: allowed is a group together with a user")
	}

	if !oneOf(c.Log.Level, Levels) {
		bad("log.level", "unknown level %q: allowed are %s", c.Log.Level, strings.Join(Levels, ", "))
	}
	if !oneOf(c.Log.Format, Formats) {
		bad("log.format", "unknown format %q: allowed are %s", c.Log.Format, strings.Join(Formats, ", "))
	}
	if !oneOf(c.Log.SyslogFormat, SyslogFormats) {
		bad("log.syslog_format", "unknown syslog format %q: allowed are %s", c.Log.SyslogFormat, strings.Join(SyslogFormats, ", "))
	}
	if !oneOf(c.Log.Facility, Facilities) {
		bad("log.facility", "unknown facility %q: allowed are %s", c.Log.Facility, strings.Join(Facilities, ", "))
	}
	if c.Log.MaxSizeMB < 0 || c.Log.MaxSizeMB > maxLogSizeMB {
		bad("log.max_size_mb", "%d: allowed is 0 (no size rotation) to %d (1 TiB)", c.Log.MaxSizeMB, maxLogSizeMB)
	}
	if c.Log.MaxBackups < 0 || c.Log.MaxBackups > maxLogBackups {
		bad("log.max_backups", "%d: allowed is 0 (keep all) to %d", c.Log.MaxBackups, maxLogBackups)
	}
	if c.Log.MaxAgeDays < 0 || c.Log.MaxAgeDays > maxLogAgeDays {
		bad("log.max_age_days", "%d: allowed is 0 (keep forever) to %d (ten years)", c.Log.MaxAgeDays, maxLogAgeDays)
	}

	if c.Limits.MaxConnections < 1 || c.Limits.MaxConnections > maxConnections {
		bad("limits.max_connections", "%d: allowed is 1 or more, at most %d (Linux's default fs.nr_open, the most files a process can open: each connection is one)", c.Limits.MaxConnections, maxConnections)
	}
	if c.Limits.MaxQuestionBytes < 1 || c.Limits.MaxQuestionBytes > MaxQuestionBytesLimit {
		bad("limits.max_question_bytes", "%d: allowed is 1 to %d (64 KiB): each connection may buffer this much of a question", c.Limits.MaxQuestionBytes, MaxQuestionBytesLimit)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"limits.idle_timeout", c.Limits.IdleTimeout},
		{"limits.question_timeout", c.Limits.QuestionTimeout},
		{"limits.write_timeout", c.Limits.WriteTimeout},
		{"limits.shutdown_timeout", c.Limits.ShutdownTimeout},
	} {
		if d.v <= 0 || d.v.D() > maxTimeout {
			bad(d.key, "%s: allowed is a positive duration up to 24h, such as \"30s\"", d.v.D())
		}
	}

	if len(c.Answers) > maxAnswers {
		bad("answers", "%d entries: allowed is at most %d questions", len(c.Answers), maxAnswers)
	}
	for q, a := range c.Answers {
		key := "answers." + quoteKey(q)
		shown := key
		if len(q) > clipBytes {
			shown = "answers." + strconv.Quote(q[:clipAt(q)]) + "..."
		}
		if err := checkQuestion(q, c.Limits.MaxQuestionBytes); err != nil {
			badAt(key, shown, "question %s: %v", clip(q), err)
		}
		if err := checkAnswer(a); err != nil {
			badAt(key, shown, "answer %s: %v", clip(a), err)
		}
	}
	return errors.Join(errs...)
}

// quoteKey writes an [answers] key as toml.Key.String does.
func quoteKey(q string) string {
	for _, r := range q {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return strconv.Quote(q)
		}
	}
	return q
}

// clipBytes is how much of a question or an answer an error shows: a
// megabyte of value must not become a megabyte of error.
const clipBytes = 40

// clip quotes s for an error message; a longer s is cut after clipBytes
// (at a character's start) and followed by "..." and its length.
func clip(s string) string {
	if len(s) <= clipBytes {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:clipAt(s)]), len(s))
}

// clipAt returns where clip cuts s: clipBytes, or before the character
// that spans it.
func clipAt(s string) int {
	n := clipBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

func checkQuestion(q string, max int) error {
	switch {
	case !strings.HasSuffix(q, "?"):
		return errors.New("must end with '?': allowed is a question such as \"Readability counts?\"")
	case strings.Count(q, "?") != 1:
		return errors.New("has a '?' before its end: a question ends at its first '?'")
	case q != strings.TrimLeft(q, " \t\r\n"):
		return errors.New("starts with whitespace, which zend skips before a question: remove it")
	case max > 0 && len(q) > max:
		return fmt.Errorf("is %d bytes, longer than limits.max_question_bytes (%d)", len(q), max)
	}
	return nil
}

func checkAnswer(a string) error {
	switch {
	case !strings.HasSuffix(a, "."):
		return errors.New("must end with '.': clients read an answer up to its period, allowed is a text such as \"Yes.\"")
	case strings.Count(a, ".") != 1:
		return errors.New("has a '.' before its end: clients read an answer up to its first period")
	case len(a) > maxAnswerBytes:
		return fmt.Errorf("allowed is at most %d bytes, its period included: a sentence such as \"Yes.\"", maxAnswerBytes)
	}
	return nil
}

// checkAddr checks a listen address: "host:port", host an IP address, a
// host name, or empty for every interface; IPv6 in brackets.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("not host:port (%v): allowed is an address such as \"127.0.0.1:1060\", \"[::1]:1060\" or \":1060\"", strings.TrimPrefix(err.Error(), "address "+a+": "))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q: allowed is a number from 0 to 65535", port)
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	if strings.Contains(host, ":") {
		return fmt.Errorf("host %q is not an IP address: allowed is an IPv4 or IPv6 address or a host name", host)
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("host %q is not an IP address or host name", host)
		}
	}
	return nil
}

// DualStack reports whether the listen address addr is the wildcard zend
// serves IPv4 and IPv6 on, with one socket: ":PORT" or "[::]:PORT".
// "0.0.0.0:PORT" is IPv4 only.
func DualStack(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() == nil && ip.IsUnspecified()
}

// checkOverlap finds two server.listen entries that cannot both be bound:
// a wildcard and another address of its port and family (Linux refuses
// the second bind even with SO_REUSEADDR). ":1060" covers both families,
// so it also excludes "[::1]:1060", which was fine beside the IPv4-only
// ":1060" of older zends. Port 0 is a new port each time.
func checkOverlap(addrs []string) error {
	ipv4 := func(host string) net.IP {
		if ip := net.ParseIP(host); ip != nil {
			return ip.To4()
		}
		return nil
	}
	for _, w := range addrs {
		host, port, err := net.SplitHostPort(w)
		dual := DualStack(w)
		if err != nil || port == "0" || !dual && !ipv4(host).Equal(net.IPv4zero) {
			continue
		}
		for _, o := range addrs {
			oh, op, err := net.SplitHostPort(o)
			if err != nil || o == w || op != port {
				continue // the same entry twice is bound once
			}
			if dual {
				return fmt.Errorf("%q and %q both listen on port %s: %q is already every interface, IPv4 and IPv6: list one of them", w, o, port, w)
			}
			if ipv4(oh) != nil {
				return fmt.Errorf("%q and %q both listen on port %s: %q is already every IPv4 interface: list one of them", w, o, port, w)
			}
		}
	}
	return nil
}

// ParseUmask parses an octal umask such as "0022" or "027".
func ParseUmask(s string) (int, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q: allowed is an octal number from \"0000\" to \"0777\", such as \"0022\"", s)
	}
	return int(n), nil
}

func oneOf(s string, allowed []string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

// ParsePrefix parses an address ("192.0.2.7", "::1") or a CIDR
// ("10.0.0.0/8", "2001:db8::/32"); an address is a prefix of one host.
// An IPv4-mapped address or CIDR ("::ffff:192.0.2.7", "::ffff:a.b.c.d/N"
// with N >= 96) is the IPv4 prefix it names (a.b.c.d/N-96): zend matches
// an IPv4 client, also one of a dual-stack socket, by its IPv4 address,
// and a mapped prefix would never match it. A mapped CIDR shorter than /96
// names no IPv4 client and is an error.
func ParsePrefix(s string) (netip.Prefix, error) {
	bad := func() (netip.Prefix, error) {
		return netip.Prefix{}, fmt.Errorf("%q: allowed is an IPv4 or IPv6 address or CIDR, such as \"10.0.0.0/8\" or \"::1\"", s)
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return bad()
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return bad()
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			want := "10.0.0.0/8"
			if p.Bits() <= 32 { // an IPv4 length, most likely
				want = netip.PrefixFrom(a.Unmap(), p.Bits()).Masked().String()
			}
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped CIDR needs a length of 96 or more (::ffff:a.b.c.d/N is the IPv4 a.b.c.d/N-96): allowed is an IPv4 CIDR such as %q", s, want)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Problem returns the error for key's value, at the place that value came
// from (file and line, environment variable, flag, or the defaults):
// format says what is wrong and what is allowed. Validate reports with it,
// and so does whoever finds that a valid value does not fit the system
// (daemon.Preflight).
func (c *Config) Problem(key, format string, args ...any) *Error {
	o := c.origin[key]
	if o.source == "" {
		o.source = "defaults"
		if c.Path != "" {
			o.source = c.Path
		}
	}
	return &Error{Source: o.source, Line: o.line, Key: key, Msg: fmt.Sprintf(format, args...)}
}
