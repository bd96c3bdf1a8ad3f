package daemon

import (
	"context"
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

// logSink is where zend's log goes: stderr, or a file rotated by size with
// lumberjack and reopened in place on SIGUSR1. Its handler can be swapped
// (level, format, file) on reload while loggers built from it keep working.
//
// lumberjack's pitfalls and how they are handled here:
//   - Rotate() renames the file: logrotate's "create" mode wants a reopen
//     in place, so Reopen closes lumberjack, which opens the path again on
//     the next write.
//   - New files are 0600: the file is created 0640 before lumberjack opens
//     it, and lumberjack copies the mode of the file it rotates.
//   - Close() leaks lumberjack's mill goroutine: one lumberjack.Logger
//     lives as long as the file and its rotation settings stay the same;
//     only a reload that changes them replaces it (one parked goroutine
//     per such change).
//   - A deleted or renamed file is not recreated: at most once a second
//     the path is checked against the open file and reopened when they
//     differ.
//   - fds 1 and 2 would keep writing to the old file after a rotation:
//     with StdFds set (the daemon), the new file is dup2'ed onto them after
//     every rotation and reopen, so that a runtime panic lands in the
//     current file.
//   - One writer process only: in-zen binaries never use this writer.
type logSink struct {
	level   slog.LevelVar
	handler atomic.Pointer[slog.Handler]
	stdFds  bool // dup2 the current file onto fds 1 and 2

	mu       sync.Mutex
	stderr   io.Writer
	settings config.Log
	path     string             // "" means stderr
	lj       *lumberjack.Logger // nil when path is ""
	size     int64              // bytes in the current file, as lumberjack counts
	checked  time.Time          // last check of the path against the open file
	failing  error              // the last write error, reported once it clears
}

// newLogSink returns a sink for the log settings of cfg. defaultFile is
// used when log.file is "" ("" means stderr). With stdFds the file is also
// put on fds 1 and 2.
func newLogSink(cfg *config.Config, defaultFile string, stderr io.Writer, stdFds bool) (*logSink, error) {
	s := &logSink{stderr: stderr, stdFds: stdFds}
	if err := s.apply(cfg, defaultFile); err != nil {
		return nil, err
	}
	return s, nil
}

// logPath returns the log file of cfg, "" for stderr.
func logPath(cfg *config.Config, defaultFile string) string {
	p := cfg.Log.File
	if p == "" {
		p = defaultFile
	}
	if p == "-" {
		return ""
	}
	return cfg.Abs(p)
}

// apply switches to cfg's log settings. On error nothing changes.
func (s *logSink) apply(cfg *config.Config, defaultFile string) error {
	path := logPath(cfg, defaultFile)
	s.mu.Lock()
	defer s.mu.Unlock()
	if path != s.path || (path != "" && rotation(cfg.Log) != rotation(s.settings)) {
		if path != "" {
			if err := precreate(path); err != nil {
				return err
			}
		}
		old := s.lj
		s.path, s.lj = path, nil
		if path != "" {
			s.lj = &lumberjack.Logger{
				Filename:   path,
				MaxSize:    cfg.Log.MaxSizeMB,
				MaxBackups: cfg.Log.MaxBackups,
				MaxAge:     cfg.Log.MaxAgeDays,
				Compress:   cfg.Log.Compress,
			}
			if cfg.Log.MaxSizeMB == 0 {
				s.lj.MaxSize = 1 << 30 // lumberjack's 0 is 100 MB; zend's 0 is never
			}
			s.size = fileSize(path)
			s.checked = time.Now()
			if s.stdFds {
				if err := dupOntoStd(path); err != nil {
					s.path, s.lj = "", old
					return err
				}
			}
		}
		if old != nil {
			old.Close()
		}
	}
	s.settings = cfg.Log
	s.level.Set(logLevel(cfg.Log.Level))
	var h slog.Handler
	opts := &slog.HandlerOptions{Level: &s.level}
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(s, opts)
	} else {
		h = slog.NewTextHandler(s, opts)
	}
	s.handler.Store(&h)
	return nil
}

// rotation is the part of the log settings that lumberjack is built with.
func rotation(l config.Log) [4]int {
	c := 0
	if l.Compress {
		c = 1
	}
	return [4]int{l.MaxSizeMB, l.MaxBackups, l.MaxAgeDays, c}
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
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lj == nil {
		return s.stderr.Write(p)
	}
	if time.Since(s.checked) > time.Second {
		s.checked = time.Now()
		if !s.current() {
			s.reopenLocked()
		}
	}
	rotates := s.size+int64(len(p)) > int64(s.lj.MaxSize)*1024*1024
	n, err := s.lj.Write(p)
	if err != nil {
		if s.failing == nil {
			s.failing = err
		}
		return n, err
	}
	if rotates {
		s.size = int64(n)
		if s.stdFds {
			dupOntoStd(s.path)
		}
	} else {
		s.size += int64(n)
	}
	if s.failing != nil {
		msg := fmt.Sprintf("time=%s level=WARN msg=\"log writes failed before this line, some records are lost\" err=%q\n",
			time.Now().Format(time.RFC3339Nano), s.failing.Error())
		s.failing = nil
		k, _ := s.lj.Write([]byte(msg))
		s.size += int64(k)
	}
	return n, nil
}

// current reports whether the path still names the file being written:
// false when it is gone, or (with StdFds) when it is another inode than
// fd 2's. A path that cannot be checked (no permission after dropping
// privileges) counts as current.
func (s *logSink) current() bool {
	fi, err := os.Stat(s.path)
	if err != nil {
		return !os.IsNotExist(err)
	}
	if !s.stdFds {
		return true
	}
	var st unix.Stat_t
	if unix.Fstat(2, &st) != nil {
		return true
	}
	return uint64(st.Ino) == inode(fi)
}

// Reopen closes the log file and opens the path again (logrotate's
// "create" mode: the old file was renamed away), and puts it on fds 1 and 2.
func (s *logSink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lj == nil {
		return nil
	}
	return s.reopenLocked()
}

func (s *logSink) reopenLocked() error {
	// Open the path first: when that fails the old file stays in use.
	if err := precreate(s.path); err != nil {
		return err
	}
	s.lj.Close() // lumberjack opens the path again on the next write
	s.size = fileSize(s.path)
	s.checked = time.Now()
	if s.stdFds {
		return dupOntoStd(s.path)
	}
	return nil
}

// Close closes the file.
func (s *logSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lj != nil {
		return s.lj.Close()
	}
	return nil
}

// Path returns the log file, "" for stderr.
func (s *logSink) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// Logger returns a logger that follows the sink's current handler.
func (s *logSink) Logger() *slog.Logger { return slog.New(swapHandler{s}) }

// swapHandler delegates to the sink's current handler.
type swapHandler struct{ s *logSink }

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
	s      *logSink
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
