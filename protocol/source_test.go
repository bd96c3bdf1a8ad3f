package protocol

import (
	"net/netip"
	"strings"
	"testing"
)

// TestSourceKey checks which source a client address counts under in the
// per-source limits, for an IPv6 prefix of bits.
func TestSourceKey(t *testing.T) {
	tests := []struct {
		ip   string
		bits int
		want string
	}{
		// An IPv4 address is its own source, whatever the IPv6 prefix.
		{"192.0.2.7", 64, "192.0.2.7"},
		// An IPv4 client of a dual-stack socket is its IPv4 address, not
		// ::/64, which would make all of IPv4 one source.
		{"::ffff:192.0.2.7", 64, "192.0.2.7"},
		// An IPv6 address counts under its /64...
		{"2001:db8:1:2:aaaa::1", 64, "2001:db8:1:2::"},
		// ...as does another address of the same /64: one source.
		{"2001:db8:1:2:bbbb:cccc:dddd:2", 64, "2001:db8:1:2::"},
		// The next /64 is another source.
		{"2001:db8:1:3::1", 64, "2001:db8:1:3::"},
		// A /48, for sites that hand each host more.
		{"2001:db8:1:2:aaaa::1", 48, "2001:db8:1::"},
		// A prefix that is not on a 16-bit boundary.
		{"2001:db8:1:2:aaaa::1", 60, "2001:db8:1::"},
		// /128 counts each address apart.
		{"2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1"},
		// 0 (protocol.Limits' zero value) counts each address apart too.
		{"2001:db8:1:2:aaaa::1", 0, "2001:db8:1:2:aaaa::1"},
		// The shortest prefix config allows: half of the address space.
		{"2001:db8::1", 1, "::"},
		// A link-local address loses its zone: the key is an address.
		{"fe80::1:2%eth0", 64, "fe80::"},
		// ...also when it is kept whole.
		{"fe80::1:2%eth0", 128, "fe80::1:2"},
		// The IPv6 loopback.
		{"::1", 64, "::"},
	}
	for _, tt := range tests {
		if got := sourceKey(netip.MustParseAddr(tt.ip), tt.bits); got.String() != tt.want {
			t.Errorf("sourceKey(%s, %d) = %s, want %s", tt.ip, tt.bits, got, tt.want)
		}
	}
}

// TestSourcesIPv6Prefix admits and releases connections in order with
// limits.max_connections_per_ip = 1: two addresses of one /64 are one
// source, and the counts stay right when a reload changes the prefix
// while connections are open.
func TestSourcesIPv6Prefix(t *testing.T) {
	var s sources
	steps := []struct {
		op   string // "admit" or "release"
		ip   string
		bits int  // limits.ipv6_prefix of an admit
		ok   bool // the admit is counted (not refused)
	}{
		// The first IPv6 client holds its /64's one connection.
		{"admit", "2001:db8::1", 64, true},
		// Another address of the same /64 is the same source: refused.
		{"admit", "2001:db8::2", 64, false},
		// Another /64 is another source.
		{"admit", "2001:db8:0:1::1", 64, true},
		// IPv4 clients, one mapped, are one source per address.
		{"admit", "::ffff:127.0.0.4", 64, true},
		{"admit", "127.0.0.5", 64, true},
		// 127.0.0.4 is 127.0.0.4 however it is written.
		{"admit", "127.0.0.4", 64, false},
		// The first client goes: its /64 has room again.
		{"release", "2001:db8::1", 0, false},
		{"admit", "2001:db8::2", 64, true},
		// A reload keys on /128: 2001:db8::3 is a source of its own.
		{"admit", "2001:db8::3", 128, true},
		// Back to /64: ::2 and ::3 are one source with two open.
		{"admit", "2001:db8::4", 64, false},
		// Released under /64 although admitted under /128.
		{"release", "2001:db8::3", 0, false},
		{"release", "2001:db8::2", 0, false},
		{"admit", "2001:db8::4", 64, true},
		// A reload to /48 merges 2001:db8::/64 and 2001:db8:0:1::/64.
		{"admit", "2001:db8:0:2::1", 48, false},
		// Everyone goes.
		{"release", "2001:db8::4", 0, false},
		{"release", "2001:db8:0:1::1", 0, false},
		{"release", "127.0.0.4", 0, false},
		{"release", "127.0.0.5", 0, false},
		// A release of what was never counted changes nothing.
		{"release", "2001:db8::9", 0, false},
	}
	for i, st := range steps {
		ip := netip.MustParseAddr(st.ip)
		if st.op == "release" {
			s.release(ip)
			continue
		}
		why, counted := s.admit(ip, Limits{MaxConnectionsPerIP: 1, IPv6Prefix: st.bits})
		if counted != st.ok || (why == nil) != st.ok {
			t.Errorf("step %d: admit %s under /%d = %v, %v; want counted %v", i, st.ip, st.bits, why, counted, st.ok)
		}
		if !st.ok && (why.kind != refusedPerSource || !strings.Contains(why.detail, "limits.max_connections_per_ip")) {
			t.Errorf("step %d: refusal %+v is not a per-source one naming limits.max_connections_per_ip", i, why)
		}
	}
	// Nothing is left behind: no source, no counted address.
	if len(s.m) != 0 || len(s.held) != 0 {
		t.Errorf("after every release: sources %v, held %v; want none", s.m, s.held)
	}
}

// TestSourceRefusalNamesPrefix: a refused IPv6 client is told which
// prefix it was counted under.
func TestSourceRefusalNamesPrefix(t *testing.T) {
	var s sources
	lim := Limits{MaxConnectionsPerIP: 1, IPv6Prefix: 64}
	s.admit(netip.MustParseAddr("2001:db8:1:2::1"), lim)
	why, _ := s.admit(netip.MustParseAddr("2001:db8:1:2::2"), lim)
	if want := "1 connections open already from 2001:db8:1:2::/64 (limits.max_connections_per_ip, limits.ipv6_prefix)"; why == nil || why.detail != want || why.kind != refusedPerSource {
		t.Errorf("refusal %+v, want a per-source one: %q", why, want)
	}
}
