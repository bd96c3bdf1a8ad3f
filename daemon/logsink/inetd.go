package logsink

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"zend/config"
)

// Inetd returns the logger of an inetd binary called name, writing to
// target: config.LogSyslog, config.LogJournal, or a file. spareStderr is
// the stderr the process was started with when that is not the client's
// socket, else nil.
//
// A file is opened for appending (0640, folder 0750) and put on fds 1 and
// 2, so that a runtime panic or a library's write to stderr lands in the
// log. Every record is one write(2) to an O_APPEND file, so that many
// processes can log at once without interleaving; nothing is rotated here
// (see packaging/logrotate/in-zen). syslog and the journal take one
// datagram per record from any number of processes.
//
// What cannot be opened falls back, and the first records say why: a
// file or the journal to syslog, syslog to the stderr the process was
// started with (spareStderr).
// With none of them ok is false and the logger discards: the binary must
// stop, silently, with a non-zero exit code.
func Inetd(target string, cfg *config.Config, name string, spareStderr *os.File) (log *slog.Logger, ok bool) {
	type failure struct {
		msg  string
		args []any
	}
	var failed []failure
	report := func(l *slog.Logger) *slog.Logger {
		for _, f := range failed {
			l.Error(f.msg, f.args...)
		}
		return l
	}
	if !config.IsLogService(target) {
		l, err := inetdFileLog(target, cfg, name)
		if err == nil {
			return l, true
		}
		failed = append(failed, failure{"cannot open the log file, logging to syslog instead", []any{"file", target, "err", err.Error()}})
		target = config.LogSyslog
	}
	if target == config.LogJournal {
		l, err := inetdServiceLog(config.LogJournal, cfg, name)
		if err == nil {
			return report(l), true
		}
		failed = append(failed, failure{"cannot log to the journal, logging to syslog instead", []any{"err", err.Error()}})
	}
	l, err := inetdServiceLog(config.LogSyslog, cfg, name)
	if err == nil {
		return report(l), true
	}
	failed = append(failed, failure{"cannot log to syslog, logging to stderr", []any{"socket", syslogSocket(), "err", err.Error()}})
	if spareStderr != nil {
		for _, fd := range []int{1, 2} {
			unix.Dup2(int(spareStderr.Fd()), fd)
		}
		return report(inetdLogger(spareStderr, cfg, name)), true
	}
	return slog.New(slog.DiscardHandler), false
}

// inetdLogger returns a logger of cfg's level and format on w.
func inetdLogger(w io.Writer, cfg *config.Config, name string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(cfg.Log.Level)}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("prog", name, "pid", os.Getpid())
}

// inetdFileLog opens the log file path and puts it on fds 1 and 2.
func inetdFileLog(path string, cfg *config.Config, name string) (*slog.Logger, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			f.Close()
			return nil, fmt.Errorf("log: dup2 onto fd %d: %w", fd, err)
		}
	}
	return inetdLogger(f, cfg, name), nil
}

// inetdServiceLog connects to syslog or the journal. The program's name
// and pid are the records' APP-NAME and PROCID (SYSLOG_IDENTIFIER and
// _PID in the journal), so they are not repeated as attributes.
func inetdServiceLog(target string, cfg *config.Config, name string) (*slog.Logger, error) {
	c := *cfg
	c.Log.File = target
	s := New(&c, target, nil, false)
	s.service = newLogService(target, name)
	if err := s.Open(); err != nil {
		return nil, err
	}
	return s.Logger(), nil
}
