package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"zend/config"
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

// socket is unix.Socket; a test replaces it to play a host without IPv6.
var socket = unix.Socket

// Listen binds a TCP listener on addr ("host:port") with the given backlog
// (0 means the system maximum) and SO_REUSEADDR, as the chapter's
// create_srv_socket does, but with a backlog large enough that a burst of
// clients waits in the kernel instead of being refused.
//
// ":PORT" and "[::]:PORT" listen on every interface for IPv4 and IPv6
// alike: one AF_INET6 socket with IPV6_V6ONLY off, whatever the system's
// default (net.ipv6.bindv6only, and the BSDs default to on), whose IPv4
// clients appear as ::ffff:a.b.c.d. On a host without IPv6 such an
// address is bound for IPv4 only, and log (when not nil) says so.
// "0.0.0.0:PORT" is IPv4 only.
func Listen(addr string, backlog int, log *slog.Logger) (net.Listener, error) {
	if backlog <= 0 {
		backlog = SystemBacklog()
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if config.DualStack(addr) {
		ln, err := listenOn(addr, unix.AF_INET6, &unix.SockaddrInet6{Port: ta.Port}, backlog, true)
		if err == nil || !noIPv6(err) {
			return ln, err
		}
		if log != nil {
			log.Warn("this host has no IPv6: listening on IPv4 only", "addr", addr, "err", err.Error())
		}
		return listenOn(addr, unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port}, backlog, false)
	}
	if ip4 := ta.IP.To4(); ip4 != nil || ta.IP == nil {
		s := &unix.SockaddrInet4{Port: ta.Port}
		if ip4 != nil {
			copy(s.Addr[:], ip4)
		}
		return listenOn(addr, unix.AF_INET, s, backlog, false)
	}
	s := &unix.SockaddrInet6{Port: ta.Port}
	copy(s.Addr[:], ta.IP.To16())
	if ta.Zone != "" {
		if ifi, err := net.InterfaceByName(ta.Zone); err == nil {
			s.ZoneId = uint32(ifi.Index)
		}
	}
	return listenOn(addr, unix.AF_INET6, s, backlog, false)
}

// noIPv6 tells the errors of a host without IPv6 (a kernel without it,
// or booted with ipv6.disable=1) from those of a bind that fails.
func noIPv6(err error) bool {
	return errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// listenOn makes a listening socket of family bound to sa; dualStack
// turns IPV6_V6ONLY off on an AF_INET6 socket.
func listenOn(addr string, family int, sa unix.Sockaddr, backlog int, dualStack bool) (net.Listener, error) {
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
	if dualStack {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fail("setsockopt IPV6_V6ONLY", err)
		}
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
