package inetd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"zend/config"
	"zend/daemon/logsink"
)

// spareStderr is fd 2 as the process found it, kept by GuardStdio when it
// is not the client's socket: the last place an inetd binary can say why
// it cannot log.
var spareStderr *os.File

// GuardStdio points fds 1 and 2 at /dev/null. Under inetd they are the
// client's socket: this must run before anything can write, so that
// nothing but protocol bytes ever reaches the client. An fd 2 that is not
// the client (a terminal, systemd's journal stream) is kept aside first.
func GuardStdio() {
	if stderrNotClient() {
		if fd, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3); err == nil {
			spareStderr = os.NewFile(uintptr(fd), "stderr")
		}
	}
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		// Without /dev/null, closing is the only way off the socket.
		unix.Close(1)
		unix.Close(2)
		return
	}
	unix.Dup2(null, 1)
	unix.Dup2(null, 2)
	unix.Close(null)
}

// stderrNotClient reports whether fd 2 is open and cannot be the client:
// not a socket, or a Unix socket other than the one on fd 0 (inetd passes
// the client, or in wait mode its listening socket, on fds 0, 1 and 2;
// systemd's Accept=yes may put the journal's stream on fd 2). Any other
// socket counts as the client.
func stderrNotClient() bool {
	var st0, st2 unix.Stat_t
	if unix.Fstat(2, &st2) != nil {
		return false
	}
	if st2.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return true
	}
	if unix.Fstat(0, &st0) == nil && st0.Dev == st2.Dev && st0.Ino == st2.Ino {
		return false
	}
	sa, err := unix.Getsockname(2)
	if err != nil {
		return false
	}
	_, isUnix := sa.(*unix.SockaddrUnix)
	return isUnix
}

// ErrNotListening is returned by Listener when fd 0 is not a
// listening socket.
var ErrNotListening = errors.New("fd 0 is not a listening socket")

// Conn returns the connected socket inetd passed on fd 0 and puts
// /dev/null in its place, so that closing the connection closes the
// socket (inetd's copies on fds 1 and 2 are already gone: GuardStdio).
func Conn() (net.Conn, error) {
	if ok, err := IsListening(0); err == nil && ok {
		return nil, errors.New("fd 0 is a listening socket: in-zen1 is for inetd's nowait mode (xinetd wait = no); use in-zen2 for wait mode")
	}
	f := os.NewFile(0, "inetd-socket")
	c, err := net.FileConn(f) // a dup of fd 0
	if err != nil {
		return nil, fmt.Errorf("fd 0 is not a connected socket: %w", err)
	}
	f.Close()
	nullStdin()
	return c, nil
}

// Listener returns the listening socket inetd passed on fd 0 (wait
// mode), checking SO_ACCEPTCONN, and puts /dev/null in its place.
func Listener() (net.Listener, error) {
	ok, err := IsListening(0)
	if err != nil {
		return nil, fmt.Errorf("fd 0 is not a socket (%v): in-zen2 is started by inetd in wait mode with the listening socket on fd 0", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w (SO_ACCEPTCONN is 0): in-zen2 is for inetd's wait mode (xinetd wait = yes); use in-zen1 for nowait", ErrNotListening)
	}
	f := os.NewFile(0, "inetd-listener")
	ln, err := net.FileListener(f) // a dup of fd 0
	if err != nil {
		return nil, fmt.Errorf("fd 0: %w", err)
	}
	f.Close()
	nullStdin()
	return ln, nil
}

// IsListening reports whether fd is a listening socket (SO_ACCEPTCONN;
// on macOS, which cannot be asked, a stream socket without a peer). The
// error is the system's when fd is not a socket.
func IsListening(fd int) (bool, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if errors.Is(err, unix.ENOPROTOOPT) { // macOS cannot be asked
		return unconnectedStream(fd)
	}
	if err != nil {
		return false, err
	}
	return v != 0, nil // the BSDs answer with the SO_ACCEPTCONN bit itself
}

// unconnectedStream reports whether fd is a stream socket with no peer:
// what inetd passes in wait mode is then its listening socket.
func unconnectedStream(fd int) (bool, error) {
	if _, err := unix.Getpeername(fd); err == nil || !errors.Is(err, unix.ENOTCONN) {
		return false, err
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil && typ == unix.SOCK_STREAM, err
}

// nullStdin puts /dev/null on fd 0 (closed or not).
func nullStdin() {
	null, err := unix.Open(os.DevNull, unix.O_RDONLY, 0)
	if err != nil || null == 0 {
		return
	}
	unix.Dup2(null, 0)
	unix.Close(null)
}

// Boot starts an inetd binary: it parses args with fs (to which it
// adds -c and -log), loads the configuration and opens the log (see
// logsink.Inetd): -log FILE, -log syslog or -log journal; without -log,
// log.file when it names syslog or the journal, else syslog (log.file
// naming a file is the daemon's, which only the daemon may write). It
// returns the exit code when the binary must stop instead: 2 for a bad
// command line, 1 for a configuration that does not load (said in the
// log; a broken configuration never falls back to defaults), and 1,
// silently, when nothing can log.
func Boot(fs *flag.FlagSet, args []string, usage string) (*config.Config, *slog.Logger, int) {
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("c", "", "configuration file (default $ZEND_CONFIG, else "+config.DefaultPath+")")
	logTarget := fs.String("log", "", "log file, or syslog or journal (default: log.file when it is syslog or journal, else syslog)")
	ferr := fs.Parse(args)
	cfg, cerr := config.Source{Path: *cfgPath, Environ: os.Environ()}.Load()
	if cerr != nil {
		cfg = config.Default() // for the log's settings only
	}
	target := *logTarget
	if target == "" {
		target = config.LogSyslog
		if config.IsLogService(cfg.Log.File) {
			target = cfg.Log.File
		}
	}
	log, ok := logsink.Inetd(target, cfg, fs.Name(), spareStderr)
	switch {
	case !ok:
		return nil, log, 1
	case ferr != nil:
		log.Error("bad command line", "err", ferr.Error(), "usage", usage)
		return nil, log, 2
	case cerr != nil:
		log.Error("cannot load the configuration", "err", cerr.Error())
		return nil, log, 1
	}
	return cfg, log, 0
}
