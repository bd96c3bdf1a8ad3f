package logsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/sys/unix"

	"zend/config"
)

// Log services: log.file = "syslog" sends records to the local syslog
// socket (in syslog(3)'s form or RFC 5424's, log.syslog_format), log.file = "journal" native entries to journald. Either
// way a record is one datagram, so any number of processes (the daemon,
// every in-zen1) can share the target, and nothing is rotated or reopened
// by zend: the rotation keys do not apply and SIGUSR1 only reconnects.

// DefaultSyslogSocket is the local syslog socket.
const DefaultSyslogSocket = "/dev/log"

// syslogSocket returns the syslog socket: /dev/log, or the socket a test
// names in ZEND_SYSLOG_SOCKET.
func syslogSocket() string {
	if p := os.Getenv(config.EnvSyslogSocket); p != "" {
		return p
	}
	return DefaultSyslogSocket
}

// sendTimeout bounds a send on a stream socket, and the connect. A
// datagram is never waited for: a syslog daemon that stops reading must
// not stall every connection that logs (the event loop among them), so a
// record its full queue cannot take at once is counted as lost.
var sendTimeout = time.Second

// ErrBusy is a send's error when the syslog socket's queue is full (its
// reader has stopped): the record is lost, and reconnecting would not
// help.
var ErrBusy = errors.New("syslog socket full: its reader is not keeping up")

// entry is one record for a log service.
type entry struct {
	t        time.Time
	level    slog.Level
	facility int
	rfc5424  bool        // log.syslog_format = "rfc5424"
	text     string      // the message and its attributes, as log.format prints them (no time or level)
	fields   [][2]string // the attributes as journal fields: CLIENT=...
}

// severity maps a slog level to a syslog severity (RFC 5424, 0-7): debug
// 7, info 6, between info and warn notice 5, warn 4, error 3, and from
// error+4 critical 2.
func severity(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return 7
	case l == slog.LevelInfo:
		return 6
	case l < slog.LevelWarn:
		return 5
	case l < slog.LevelError:
		return 4
	case l < slog.LevelError+4:
		return 3
	}
	return 2
}

// logService is where entries go: syslog or the journal.
type logService interface {
	open() error
	send(e *entry) error
	reopen() error
	close() error
}

// newLogService returns the service named by target (config.LogSyslog or
// config.LogJournal) for a program called app.
func newLogService(target, app string) logService {
	if target == config.LogJournal {
		return &journalService{app: app}
	}
	host, _ := os.Hostname()
	return &syslogService{path: syslogSocket(), app: app, host: host, pid: os.Getpid()}
}

// syslogService writes records to the local syslog socket, a datagram
// socket (or, where syslog listens on a stream socket, one
// newline-terminated record per line), in the form each entry asks for.
// It is log/syslog's job, but the standard package has no RFC 5424 form,
// no facility change on reload and no bound on a send.
type syslogService struct {
	path, app, host string
	pid             int
	conn            net.Conn
	stream          bool
}

func (s *syslogService) open() error {
	if s.conn != nil {
		return nil
	}
	c, err := net.DialTimeout("unixgram", s.path, sendTimeout)
	stream := false
	if errors.Is(err, syscall.EPROTOTYPE) {
		c, err = net.DialTimeout("unix", s.path, sendTimeout)
		stream = true
	}
	if err != nil {
		return fmt.Errorf("syslog socket: %w", err)
	}
	s.conn, s.stream = c, stream
	return nil
}

func (s *syslogService) send(e *entry) error {
	if s.conn == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	var b []byte
	if e.rfc5424 {
		b = format5424(e, s.host, s.app, s.pid)
	} else {
		b = format3164(e, s.app, s.pid)
	}
	if s.stream {
		b = append(b, '\n')
		s.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
		_, err := s.conn.Write(b)
		return err
	}
	// One try, never a wait: MSG_DONTWAIT, and the callback says done.
	rc, err := s.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Send(int(fd), b, unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		return err
	}
	if errors.Is(serr, unix.EAGAIN) {
		return ErrBusy
	}
	return serr
}

func (s *syslogService) reopen() error {
	s.close()
	return s.open()
}

func (s *syslogService) close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// format5424 returns e as an RFC 5424 record:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
//
// with no MSGID and no structured data ("-"): the attributes are in MSG,
// as log.format prints them, because syslog daemons show and store MSG
// as it is (rsyslog's default templates drop structured data), grep finds
// client=... there, and SD-PARAM names would have to be cut to 32 ASCII
// characters and their values escaped.
func format5424(e *entry, host, app string, pid int) []byte {
	var b bytes.Buffer
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(e.facility*8 + severity(e.level)))
	b.WriteString(">1 ")
	b.WriteString(e.t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	b.WriteByte(' ')
	b.WriteString(header(host, 255))
	b.WriteByte(' ')
	b.WriteString(header(app, 48))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(pid))
	b.WriteString(" - - ")
	b.WriteString(e.text)
	return b.Bytes()
}

// format3164 returns e in the form syslog(3) writes to /dev/log, RFC
// 3164's without the hostname:
//
//	<PRI>Mmm dd hh:mm:ss APP[PID]: MSG
//
// with the local time to the second, as syslog(3) stamps it. rsyslog's
// imuxsock and systemd-journald parse this form on /dev/log as shipped:
// APP becomes the program name (SYSLOG_IDENTIFIER), PID the pid.
func format3164(e *entry, app string, pid int) []byte {
	var b bytes.Buffer
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(e.facility*8 + severity(e.level)))
	b.WriteByte('>')
	b.WriteString(e.t.Local().Format(time.Stamp))
	b.WriteByte(' ')
	b.WriteString(tag(app))
	b.WriteByte('[')
	b.WriteString(strconv.Itoa(pid))
	b.WriteString("]: ")
	b.WriteString(e.text)
	return b.Bytes()
}

// tag returns app as an RFC 3164 TAG: at most 32 characters, none of
// them a space, '[' or ':', which end the tag for a parser.
func tag(app string) string {
	out := []byte(header(app, 32))
	for i, c := range out {
		if c == '[' || c == ':' {
			out[i] = '_'
		}
	}
	return string(out)
}

// header returns s as an RFC 5424 header field: printable ASCII without
// spaces, at most n bytes, "-" when empty.
func header(s string, n int) string {
	out := []byte(s)
	for i, c := range out {
		if c < 33 || c > 126 {
			out[i] = '_'
		}
	}
	if len(out) > n {
		out = out[:n]
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// journalService sends native journal entries (go-systemd's journal
// package: KEY=value lines, binary-safe lengths for values with
// newlines, a memfd for large entries) to /run/systemd/journal/socket.
// Each entry has MESSAGE (the text a file would have, without time and
// level), PRIORITY, SYSLOG_IDENTIFIER, SYSLOG_FACILITY, and one upper-case
// field per attribute (CLIENT=..., REASON=...) for journalctl to match.
type journalService struct{ app string }

func (j *journalService) open() error {
	if !journal.Enabled() {
		return errors.New("journal: /run/systemd/journal/socket does not answer (no systemd-journald)")
	}
	return nil
}

func (j *journalService) send(e *entry) error {
	vars := make(map[string]string, len(e.fields)+2)
	for _, f := range e.fields {
		vars[f[0]] = f[1]
	}
	vars["SYSLOG_IDENTIFIER"] = j.app
	vars["SYSLOG_FACILITY"] = strconv.Itoa(e.facility)
	return journal.Send(e.text, journal.Priority(severity(e.level)), vars)
}

func (j *journalService) reopen() error { return j.open() }
func (j *journalService) close() error  { return nil }

// journalReserved are the journal's own fields: an attribute of that name
// gets ZEND_ in front, so it cannot replace them.
var journalReserved = map[string]bool{
	"MESSAGE": true, "MESSAGE_ID": true, "PRIORITY": true, "CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true,
	"ERRNO": true, "INVOCATION_ID": true, "USER_INVOCATION_ID": true, "SYSLOG_FACILITY": true, "SYSLOG_IDENTIFIER": true,
	"SYSLOG_PID": true, "SYSLOG_TIMESTAMP": true, "SYSLOG_RAW": true, "DOCUMENTATION": true, "TID": true,
	"UNIT": true, "USER_UNIT": true, "OBJECT_PID": true,
}

// journalField turns an attribute key (with its groups) into a journal
// field name: upper case, A-Z 0-9 and _ only, not starting with _ or a
// digit, at most 64 bytes.
func journalField(groups []string, key string) string {
	name := strings.ToUpper(strings.Join(append(groups[:len(groups):len(groups)], key), "_"))
	out := []byte(name)
	for i, c := range out {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			out[i] = '_'
		}
	}
	name = string(out)
	if name == "" || name[0] == '_' || name[0] >= '0' && name[0] <= '9' || journalReserved[name] {
		name = "ZEND_" + name
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// serviceHandler is the slog handler for a log service: each record
// becomes an entry handed to emit. The text is what the file handler of
// format prints, without time and level (the service stamps both); in
// text format the message comes first, bare. Attributes and groups bound
// with With are replayed on a fresh handler for each record: zend logs
// connection events, not a hot loop.
type serviceHandler struct {
	emit     func(*entry)
	level    slog.Leveler
	format   string
	facility int
	rfc5424  bool
	ops      []func(slog.Handler) slog.Handler
}

func (h *serviceHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *serviceHandler) Handle(ctx context.Context, r slog.Record) error {
	var b bytes.Buffer
	e := &entry{t: r.Time, level: r.Level, facility: h.facility, rfc5424: h.rfc5424}
	if e.t.IsZero() {
		e.t = time.Now()
	}
	json := h.format == "json"
	opts := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 {
			switch a.Key {
			case slog.TimeKey, slog.LevelKey:
				return slog.Attr{}
			case slog.MessageKey:
				if !json {
					return slog.Attr{}
				}
				return a
			}
		}
		e.fields = append(e.fields, [2]string{journalField(groups, a.Key), a.Value.Resolve().String()})
		return a
	}}
	var th slog.Handler = slog.NewTextHandler(&b, opts)
	if json {
		th = slog.NewJSONHandler(&b, opts)
	}
	for _, op := range h.ops {
		th = op(th)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	attrs := strings.TrimSuffix(b.String(), "\n")
	if json {
		e.text = attrs
	} else {
		e.text = oneLine(r.Message)
		if attrs != "" {
			e.text += " " + attrs
		}
	}
	h.emit(e)
	return nil
}

// oneLine replaces control characters (a newline would split a record
// for syslog on a stream socket, and for whoever reads the file) with
// spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return ' '
		}
		return r
	}, s)
}

func (h *serviceHandler) with(op func(slog.Handler) slog.Handler) *serviceHandler {
	c := *h
	c.ops = append(h.ops[:len(h.ops):len(h.ops)], op)
	return &c
}

func (h *serviceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.with(func(x slog.Handler) slog.Handler { return x.WithAttrs(as) })
}

func (h *serviceHandler) WithGroup(name string) slog.Handler {
	return h.with(func(x slog.Handler) slog.Handler { return x.WithGroup(name) })
}
