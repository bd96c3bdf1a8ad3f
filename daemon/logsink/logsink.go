package logsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/natefinch/lumberjack.v2"

	"zend/config"
)

// Sink is where zend's log goes: stderr, or a file rotated by size with
// lumberjack and reopened in place on SIGUSR1. The file is opened by Open,
// after the privilege drop, by the daemon's user: root never opens a path
// in a folder that user can write. Records logged before Open are kept in
// memory and written first. The level and format can be swapped on reload
// while loggers built from the sink keep working; the file and its
// rotation are fixed for the life of the process.
//
// lumberjack's pitfalls and how they are handled here:
//   - Rotate() renames the file: logrotate's "create" mode wants a reopen
//     in place, so Reopen closes lumberjack, which opens the path again on
//     the next write.
//   - New files are 0600: the file is created 0640 before lumberjack opens
//     it, and lumberjack copies the mode of the file it rotates.
//   - Close() leaks lumberjack's mill goroutine: one lumberjack.Logger
//     lives as long as the process (the file and rotation keys need a
//     restart), so there is exactly one.
//   - A deleted or renamed file is not recreated: at most once a second
//     the path is checked against the open file and reopened when they
//     differ; a reopen that fails is reported at error level (into the
//     still-open file, and on stderr when that is not the file), counted,
//     and tried again at the next check.
//   - fds 1 and 2 would keep writing to the old file after a rotation:
//     with StdFds set (the daemon), the new file is dup2'ed onto them after
//     every rotation and reopen, so that a runtime panic lands in the
//     current file.
//   - One writer process only: in-zen binaries never use this writer.
//
// With log.file = "syslog" or "journal" the sink sends each record to that
// service instead (logservice.go): no file, no rotation, fds 1 and 2 left
// alone; the socket too is opened by Open, after the privilege drop, and
// SIGUSR1 reconnects it.
type Sink struct {
	level   slog.LevelVar
	handler atomic.Pointer[slog.Handler]
	stdFds  bool // dup2 the current file onto fds 1 and 2
	format  atomic.Value

	// reopenFailures counts failed reopens (SIGUSR1 or the periodic
	// check), for the metrics.
	reopenFailures atomic.Uint64

	mu       sync.Mutex
	stderr   io.Writer
	settings config.Log
	path     string             // "" means stderr; "syslog" or "journal" with service
	service  logService         // nil unless the log goes to syslog or the journal
	early    []*entry           // service records before Open
	opened   bool               // service: Open succeeded
	lost     int                // service records lost since the last one sent
	lj       *lumberjack.Logger // nil until Open, and when path is ""
	pending  *bytes.Buffer      // records before Open
	size     int64              // bytes in the current file, as lumberjack counts
	ino      uint64             // the current file's inode
	checked  time.Time          // last check of the path against the open file
	failing  error              // the last write error, reported once it clears
	cut      bool               // a failed write left part of a record
	reopenAt time.Time          // when a failed reopen was last reported
}

// maxPending bounds the records kept before the log file is open.
const maxPending = 256 << 10

// New returns a sink writing to path ("" for stderr) with the log
// settings of cfg. Nothing is opened until Open.
func New(cfg *config.Config, path string, stderr io.Writer, stdFds bool) *Sink {
	s := &Sink{stderr: stderr, stdFds: stdFds, path: path, settings: cfg.Log}
	if config.IsLogService(path) {
		s.service = newLogService(path, "zend")
		s.stdFds = false
	} else if path != "" {
		s.pending = &bytes.Buffer{}
	}
	s.SetFormat(cfg.Log)
	return s
}

// FilePath returns the log file of cfg, "" for stderr.
func FilePath(cfg *config.Config, defaultFile string) string {
	p := cfg.Log.File
	if p == "" {
		p = defaultFile
	}
	if p == "-" {
		return ""
	}
	if config.IsLogService(p) {
		return p
	}
	return cfg.Abs(p)
}

// Open opens the log file (creating it 0640, and its folder 0750), puts
// it on fds 1 and 2 with StdFds, and writes the records kept until now.
// It is a no-op for stderr.
func (s *Sink) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.service != nil {
		if s.opened {
			return nil
		}
		if err := s.service.open(); err != nil {
			return err
		}
		s.opened = true
		for _, e := range s.early {
			s.sendLocked(e)
		}
		s.early = nil
		return nil
	}
	if s.path == "" || s.lj != nil {
		return nil
	}
	if err := precreate(s.path); err != nil {
		return err
	}
	l := s.settings
	s.lj = &lumberjack.Logger{
		Filename:   s.path,
		MaxSize:    l.MaxSizeMB,
		MaxBackups: l.MaxBackups,
		MaxAge:     l.MaxAgeDays,
		Compress:   l.Compress,
	}
	if l.MaxSizeMB == 0 {
		s.lj.MaxSize = 1 << 30 // lumberjack's 0 is 100 MB; zend's 0 is never
	}
	s.size, s.ino = fileSize(s.path), fileIno(s.path)
	s.checked = time.Now()
	if s.stdFds {
		if err := dupOntoStd(s.path); err != nil {
			s.lj = nil
			return err
		}
	}
	if s.pending != nil {
		n, _ := s.lj.Write(s.pending.Bytes())
		s.size += int64(n)
		s.pending = nil
	}
	return nil
}

// Flush writes the records kept before Open to stderr: the start failed
// and the file will not be opened.
func (s *Sink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != nil {
		s.stderr.Write(s.pending.Bytes())
		s.pending.Reset()
	}
	for _, e := range s.early {
		fmt.Fprintf(s.stderr, "%s %s\n", e.level, e.text)
	}
	s.early = nil
}

// maxEarly bounds the service records kept before Open.
const maxEarly = 1000

// emit sends one record of the service handler, or keeps it until Open.
func (s *Sink) emit(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opened {
		if len(s.early) < maxEarly {
			s.early = append(s.early, e)
		}
		return
	}
	s.sendLocked(e)
}

// sendLocked sends e, reconnecting once when the send fails (syslog was
// restarted), not when the socket is only full (ErrBusy). A record that still cannot go is counted, and the first one
// sent afterwards is followed by a warning saying how many were lost.
func (s *Sink) sendLocked(e *entry) {
	err := s.service.send(e)
	if err != nil && !errors.Is(err, ErrBusy) {
		if s.service.reopen() == nil {
			err = s.service.send(e)
		}
	}
	if err != nil {
		if s.lost == 0 {
			s.failing = err
		}
		s.lost++
		return
	}
	if s.lost > 0 {
		w := &entry{t: time.Now(), level: slog.LevelWarn, facility: e.facility, rfc5424: e.rfc5424,
			text:   fmt.Sprintf("log records lost before this one lost=%d err=%q", s.lost, s.failing.Error()),
			fields: [][2]string{{"LOST", fmt.Sprint(s.lost)}, {"ERR", s.failing.Error()}}}
		if s.service.send(w) == nil {
			s.lost, s.failing = 0, nil
		}
	}
}

// SetFormat applies the level, format, facility and syslog form of l:
// what a reload may change in [log].
func (s *Sink) SetFormat(l config.Log) {
	s.level.Set(logLevel(l.Level))
	var h slog.Handler
	if s.service != nil {
		h = &serviceHandler{emit: s.emit, level: &s.level, format: l.Format,
			facility: config.FacilityCode(l.Facility), rfc5424: l.SyslogFormat == config.SyslogRFC5424}
	} else {
		h = s.newHandler(s, l.Format)
	}
	s.format.Store(l.Format)
	s.handler.Store(&h)
}

// newHandler returns a handler of format writing to w at the sink's level.
func (s *Sink) newHandler(w io.Writer, format string) slog.Handler {
	opts := &slog.HandlerOptions{Level: &s.level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// record formats one record in the sink's format, for messages the sink
// writes itself while holding its lock.
func (s *Sink) record(level slog.Level, msg string, args ...any) []byte {
	var b bytes.Buffer
	format, _ := s.format.Load().(string)
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.Add(args...)
	s.newHandler(&b, format).Handle(context.Background(), r)
	return b.Bytes()
}

// precreate creates the log file 0640 (and its folder 0750) when missing,
// so lumberjack, which copies the mode of the file it finds, keeps 0640.
func precreate(path string) error {
	f, err := openAppend(path)
	if err != nil {
		return err
	}
	return f.Close()
}

func fileSize(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}

func fileIno(path string) uint64 {
	if fi, err := os.Stat(path); err == nil {
		return inode(fi)
	}
	return 0
}

// dupOntoStd opens path for appending and puts it on fds 1 and 2, so that
// whatever writes there (a runtime panic, a library) lands in the log.
func dupOntoStd(path string) error {
	f, err := openAppend(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("log: dup2 onto fd %d: %w", fd, err)
		}
	}
	return nil
}

// Write writes one log record.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lj == nil {
		if s.pending != nil {
			if s.pending.Len()+len(p) <= maxPending {
				s.pending.Write(p)
			}
			return len(p), nil
		}
		return s.stderr.Write(p)
	}
	if time.Since(s.checked) > time.Second {
		s.checked = time.Now()
		if !s.current() {
			s.reopenLocked()
		}
	}
	if s.cut {
		// The last failed write left part of a record: end its line,
		// so the next record starts on its own.
		if k, err := s.lj.Write([]byte("\n")); err == nil {
			s.size += int64(k)
			s.cut = false
		}
	}
	rotates := s.size+int64(len(p)) > int64(s.lj.MaxSize)*1024*1024
	n, err := s.lj.Write(p)
	if err != nil {
		if s.failing == nil {
			s.failing = err
		}
		s.size += int64(n)
		s.cut = s.cut || (n > 0 && p[n-1] != '\n')
		return n, err
	}
	if rotates {
		s.size, s.ino = int64(n), fileIno(s.path)
		if s.stdFds {
			dupOntoStd(s.path)
		}
	} else {
		s.size += int64(n)
	}
	if s.failing != nil {
		msg := s.record(slog.LevelWarn, "log writes failed before this line, some records are lost", "err", s.failing.Error())
		s.failing = nil
		k, _ := s.lj.Write(msg)
		s.size += int64(k)
	}
	return n, nil
}

// current reports whether the path still names the file being written. A
// path that cannot be checked (no permission) counts as current.
func (s *Sink) current() bool {
	fi, err := os.Stat(s.path)
	if err != nil {
		return !os.IsNotExist(err)
	}
	return inode(fi) == s.ino
}

// Reopen closes the log file and opens the path again (logrotate's
// "create" mode: the old file was renamed away), and puts it on fds 1 and
// 2. On error the old file stays in use; the failure is reported there.
func (s *Sink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.service != nil {
		if !s.opened {
			return nil
		}
		return s.service.reopen()
	}
	if s.lj == nil {
		return nil
	}
	return s.reopenLocked()
}

// reopenInterval is how often a reopen that keeps failing is reported.
const reopenInterval = time.Minute

func (s *Sink) reopenLocked() error {
	s.checked = time.Now()
	// Open the path first: when that fails the old file stays in use.
	if err := precreate(s.path); err != nil {
		n := s.reopenFailures.Add(1)
		if n == 1 || time.Since(s.reopenAt) >= reopenInterval {
			s.reopenAt = time.Now()
			msg := s.record(slog.LevelError, "cannot reopen the log file, writing to the old one; retrying every second while there is something to log",
				"file", s.path, "err", err.Error(), "failures", n)
			k, _ := s.lj.Write(msg)
			s.size += int64(k)
			if !s.stdFds && s.stderr != nil {
				s.stderr.Write(msg)
			}
		}
		return err
	}
	recovered := s.reopenAt != time.Time{}
	s.reopenAt = time.Time{}
	s.lj.Close() // lumberjack opens the path again on the next write
	s.size, s.ino = fileSize(s.path), fileIno(s.path)
	if s.stdFds {
		if err := dupOntoStd(s.path); err != nil {
			return err
		}
	}
	if recovered {
		k, _ := s.lj.Write(s.record(slog.LevelInfo, "log file reopened after failures", "file", s.path, "failures", s.reopenFailures.Load()))
		s.size += int64(k)
	}
	return nil
}

// Close closes the file.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.service != nil {
		return s.service.close()
	}
	if s.lj != nil {
		return s.lj.Close()
	}
	return nil
}

// ReopenFailures counts the reopens of the log file that failed.
func (s *Sink) ReopenFailures() uint64 { return s.reopenFailures.Load() }

// Path returns the log file, "" for stderr, "syslog" or "journal".
func (s *Sink) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// OnFile reports whether the log goes to a file (which is then on fds 1
// and 2 with StdFds).
func (s *Sink) OnFile() bool { return s.path != "" && s.service == nil }

// Logger returns a logger that follows the sink's current handler.
func (s *Sink) Logger() *slog.Logger { return slog.New(swapHandler{s}) }

// swapHandler delegates to the sink's current handler.
type swapHandler struct{ s *Sink }

func (h swapHandler) cur() slog.Handler { return *h.s.handler.Load() }

func (h swapHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.cur().Enabled(ctx, l)
}

func (h swapHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.cur().Handle(ctx, r)
}

func (h swapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &boundHandler{s: h.s, attrs: as}
}

func (h swapHandler) WithGroup(name string) slog.Handler {
	return &boundHandler{s: h.s, group: name}
}

// boundHandler is a swapHandler with attributes or a group, applied to
// whatever handler is current when a record is handled. The derived handler
// is cached until the sink's handler changes.
type boundHandler struct {
	s      *Sink
	parent *boundHandler
	attrs  []slog.Attr
	group  string
	cache  atomic.Pointer[derived]
}

type derived struct {
	from *slog.Handler
	h    slog.Handler
}

func (h *boundHandler) resolve() slog.Handler {
	cur := h.s.handler.Load()
	if d := h.cache.Load(); d != nil && d.from == cur {
		return d.h
	}
	var base slog.Handler
	if h.parent != nil {
		base = h.parent.resolve()
	} else {
		base = *cur
	}
	var out slog.Handler
	if h.group != "" {
		out = base.WithGroup(h.group)
	} else {
		out = base.WithAttrs(h.attrs)
	}
	h.cache.Store(&derived{from: cur, h: out})
	return out
}

func (h *boundHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return (*h.s.handler.Load()).Enabled(ctx, l)
}

func (h *boundHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.resolve().Handle(ctx, r)
}

func (h *boundHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &boundHandler{s: h.s, parent: h, attrs: as}
}

func (h *boundHandler) WithGroup(name string) slog.Handler {
	return &boundHandler{s: h.s, parent: h, group: name}
}
