//go:build linux

package protocol

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAddrPortUnmaps checks the client address the eventloop engine takes
// from accept4: as the other engines (addrPortOf), an IPv4 client of a
// dual-stack socket is its IPv4 address in logs and refusals.
func TestAddrPortUnmaps(t *testing.T) {
	mapped := netip.MustParseAddr("::ffff:127.0.0.2").As16()
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	tests := []struct {
		sa   unix.Sockaddr
		want string
	}{
		// An IPv4 socket's client.
		{&unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 2}, Port: 4000}, "127.0.0.2:4000"},
		// The same client on a dual-stack socket: IPv4 too.
		{&unix.SockaddrInet6{Addr: mapped, Port: 4000}, "127.0.0.2:4000"},
		// An IPv6 client stays IPv6.
		{&unix.SockaddrInet6{Addr: v6, Port: 4000}, "[2001:db8::1]:4000"},
	}
	for _, tt := range tests {
		if got := addrPort(tt.sa).String(); got != tt.want {
			t.Errorf("addrPort(%+v) = %s, want %s", tt.sa, got, tt.want)
		}
	}
}
