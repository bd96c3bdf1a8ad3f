package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
// Root does not follow a link at the file's name (root only writes logs in
// folders only root can write, see prepareLogDir; this is the second
// line of defence).
func openAppend(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create log folder: %w", err)
	}
	// O_NONBLOCK: a FIFO planted at the name must not stall the open
	// (and with it every connection that logs); anything but a regular
	// file is refused.
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND | syscall.O_NONBLOCK
	if os.Geteuid() == 0 {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0o640)
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
