package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"zend/daemon/inetd"

	"golang.org/x/sys/unix"
)

// envListenFDs carries sockets inherited from systemd through the stages
// of "zend start": go-daemon re-executes zend, so LISTEN_PID no longer
// matches, and its own descriptors 0-3 would overwrite fds 3 and up. The
// original process moves them above any descriptor a stage sets up and
// names them here.
const envListenFDs = "_ZEND_LISTEN_FDS"

// inheritedFiles returns the sockets this process was given by systemd
// (LISTEN_FDS, LISTEN_PID, from fd 3; read once) or, in the daemon stage,
// by the stage before it. The variables are removed from the environment.
func inheritedFiles() []*os.File {
	if v := os.Getenv(envListenFDs); v != "" {
		os.Unsetenv(envListenFDs)
		var files []*os.File
		for _, s := range strings.Split(v, ",") {
			if fd, err := strconv.Atoi(s); err == nil && fd > 2 {
				unix.CloseOnExec(fd)
				files = append(files, os.NewFile(uintptr(fd), "systemd-socket"))
			}
		}
		return files
	}
	return systemdFiles()
}

// listenersFrom turns inherited sockets into listeners. A socket that is
// not listening (a socket unit with Accept=yes) is an error: that mode
// runs in-zen1 per connection.
func listenersFrom(files []*os.File) ([]net.Listener, error) {
	var lns []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range lns {
			l.Close()
		}
		return nil, err
	}
	for _, f := range files {
		if ok, err := inetd.IsListening(int(f.Fd())); err != nil || !ok {
			return fail(fmt.Errorf("inherited fd %d is not a listening socket: a socket unit with Accept=yes must run in-zen1, not zend", f.Fd()))
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("inherited fd %s: %w", f.Name(), err))
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// passInherited moves inherited sockets to descriptors at or above 10,
// not close-on-exec, for the next stage, and returns them and the value of
// _ZEND_LISTEN_FDS.
func passInherited(files []*os.File) (fds []int, env string, err error) {
	var names []string
	for _, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD, 10) // not close-on-exec
		if err != nil {
			return nil, "", fmt.Errorf("inherited socket: %w", err)
		}
		f.Close()
		fds = append(fds, fd)
		names = append(names, strconv.Itoa(fd))
	}
	return fds, strings.Join(names, ","), nil
}
