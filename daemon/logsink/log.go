package logsink

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"zend/daemon/trust"
)

// logLevel turns a config level into a slog level.
func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// openAppend opens (creating it 0640, and its folder 0750, when missing) a
// log file for appending: every write goes to the end, so that several
// writers and logrotate's copytruncate never interleave or leave holes.
// As root it opens only in a folder only root can change, reached through
// folders nobody else can change, with openat and O_NOFOLLOW (see
// package trust): a link planted in a folder above the file, or at its name,
// leads nowhere. Anything but a regular file is refused (a FIFO would
// stall every connection that logs).
func openAppend(path string) (*os.File, error) {
	if os.Geteuid() == 0 {
		dir, err := trust.OpenDir(filepath.Dir(path), 0o750)
		if err != nil {
			return nil, fmt.Errorf("log folder: %w (root writes logs only where only root can write)", err)
		}
		defer dir.Close()
		f, err := dir.Open(filepath.Base(path), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		return f, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create log folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NONBLOCK, 0o640)
	if errors.Is(err, syscall.ENXIO) {
		return nil, fmt.Errorf("open log file %s: not a regular file (a FIFO nobody reads)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open log file %s: not a regular file", path)
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, fmt.Errorf("open log file: %w", err)
	}
	return f, nil
}
