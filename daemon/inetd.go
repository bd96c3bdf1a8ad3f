package daemon

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
)

// DefaultInetdLog is where in-zen1 and in-zen2 log when -log is not given.
// It is not the daemon's file: that one is rotated by the daemon, and only
// one process may write a file lumberjack rotates.
const DefaultInetdLog = "/var/log/zend/in-zen.log"

// GuardStdio points fds 1 and 2 at /dev/null. Under inetd they are the
// client's socket: this must run before anything can write, so that
// nothing but protocol bytes ever reaches the client.
func GuardStdio() {
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

// InetdLog opens path for appending (0640, folder 0750) and puts it on fds
// 1 and 2, so that a runtime panic or a library's write to stderr lands in
// the log. Every record is one write(2) to an O_APPEND file, so that many
// processes can log at once without interleaving; nothing is rotated here
// (see packaging/logrotate/in-zen). When the file cannot be opened, the
// logger discards and the error says why.
func InetdLog(path string, cfg *config.Config, name string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: logLevel(cfg.Log.Level)}
	newLogger := func(w io.Writer) *slog.Logger {
		var h slog.Handler = slog.NewTextHandler(w, opts)
		if cfg.Log.Format == "json" {
			h = slog.NewJSONHandler(w, opts)
		}
		return slog.New(h).With("prog", name, "pid", os.Getpid())
	}
	f, err := openAppend(path)
	if err != nil {
		return newLogger(io.Discard), err
	}
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			f.Close()
			return newLogger(io.Discard), fmt.Errorf("log: dup2 onto fd %d: %w", fd, err)
		}
	}
	return newLogger(f), nil
}

// ErrNotListening is returned by InetdListener when fd 0 is not a
// listening socket.
var ErrNotListening = errors.New("fd 0 is not a listening socket")

// InetdConn returns the connected socket inetd passed on fd 0 and puts
// /dev/null in its place, so that closing the connection closes the
// socket (inetd's copies on fds 1 and 2 are already gone: GuardStdio).
func InetdConn() (net.Conn, error) {
	if ok, err := isListening(0); err == nil && ok {
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

// InetdListener returns the listening socket inetd passed on fd 0 (wait
// mode), checking SO_ACCEPTCONN, and puts /dev/null in its place.
func InetdListener() (net.Listener, error) {
	ok, err := isListening(0)
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

func isListening(fd int) (bool, error) {
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

// InetdBoot starts an inetd binary: it parses args with fs (to which it
// adds -c and -log), loads the configuration and opens the log (see
// InetdLog). It returns the exit code when the binary must stop instead:
// 2 for a bad command line, 1 for a configuration that does not load,
// said in the log when the log could be opened (a broken configuration
// never falls back to defaults).
func InetdBoot(fs *flag.FlagSet, args []string, usage string) (*config.Config, *slog.Logger, int) {
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("c", "", "configuration file (default $ZEND_CONFIG, else "+config.DefaultPath+")")
	logPath := fs.String("log", DefaultInetdLog, "log file")
	ferr := fs.Parse(args)
	cfg, cerr := config.Source{Path: *cfgPath, Environ: os.Environ()}.Load()
	if cerr != nil {
		cfg = config.Default() // for the log's settings only
	}
	log, _ := InetdLog(*logPath, cfg, fs.Name())
	switch {
	case ferr != nil:
		log.Error("bad command line", "err", ferr.Error(), "usage", usage)
		return nil, log, 2
	case cerr != nil:
		log.Error("cannot load the configuration", "err", cerr.Error())
		return nil, log, 1
	}
	return cfg, log, 0
}
