package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// somaxconnPath holds the kernel's cap on a listen backlog.
const somaxconnPath = "/proc/sys/net/core/somaxconn"

// SystemBacklog returns net.core.somaxconn, or 4096 when it cannot be read.
func SystemBacklog() int {
	b, err := os.ReadFile(somaxconnPath)
	if err != nil {
		return 4096
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 4096
	}
	return n
}

// Listen binds a TCP listener on addr ("host:port") with the given backlog
// (0 means the system maximum) and SO_REUSEADDR, as the chapter's
// create_srv_socket does, but with a backlog large enough that a burst of
// clients waits in the kernel instead of being refused.
func Listen(addr string, backlog int) (net.Listener, error) {
	if backlog <= 0 {
		backlog = SystemBacklog()
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	var (
		sa     unix.Sockaddr
		family = unix.AF_INET
	)
	if ip4 := ta.IP.To4(); ip4 != nil || ta.IP == nil {
		s := &unix.SockaddrInet4{Port: ta.Port}
		if ip4 != nil {
			copy(s.Addr[:], ip4)
		}
		sa = s
	} else {
		family = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: ta.Port}
		copy(s.Addr[:], ta.IP.To16())
		if ta.Zone != "" {
			if ifi, err := net.InterfaceByName(ta.Zone); err == nil {
				s.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s
	}
	fd, err := tcpSocket(family)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: socket: %w", addr, err)
	}
	fail := func(op string, err error) (net.Listener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: %s: %w", addr, op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt SO_REUSEADDR", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	f := os.NewFile(uintptr(fd), "tcp:"+addr)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// the soft limit in force.
func raiseNoFile() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err == nil {
			rl = want
		}
	}
	return uint64(rl.Cur), nil // int64 on FreeBSD
}

// reservedFDs are the file descriptors zend keeps for itself beyond its
// conversations, its listeners and its metrics server (metricsFDs): log
// files, the control socket, the runtime's (about a dozen in all on a zend
// at rest), as redis reserves 32.
const reservedFDs = 32
