package config

import (
	"strings"
	"testing"
)

// TestDualStack checks which listen addresses are one socket for IPv4
// and IPv6.
func TestDualStack(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		// No host: every interface, both families.
		{":1060", true},
		// The IPv6 wildcard, spelled out.
		{"[::]:1060", true},
		// ...or spelled longer.
		{"[0:0:0:0:0:0:0:0]:1060", true},
		// The IPv4 wildcard is IPv4 only.
		{"0.0.0.0:1060", false},
		// So is the IPv4 wildcard written IPv4-mapped.
		{"[::ffff:0.0.0.0]:1060", false},
		// A particular address is its own family.
		{"[::1]:1060", false},
		{"127.0.0.1:1060", false},
		// A host name is not a wildcard.
		{"localhost:1060", false},
		// Not host:port.
		{"1060", false},
	}
	for _, tt := range tests {
		if got := DualStack(tt.addr); got != tt.want {
			t.Errorf("DualStack(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestListenOverlap checks server.listen lists whose entries cannot all
// be bound: a wildcard and another address of its port and family. want
// is "" when the list is valid, else a substring of the error.
func TestListenOverlap(t *testing.T) {
	tests := []struct {
		listen []string
		want   string
	}{
		// Valid before dual-stack; now ":1060" is [::1]:1060 too.
		{[]string{":1060", "[::1]:1060"}, `server.listen: ":1060" and "[::1]:1060" both listen on port 1060: ":1060" is already every interface, IPv4 and IPv6: list one of them`},
		// The two spellings of the dual-stack wildcard.
		{[]string{"[::]:1060", ":1060"}, `"[::]:1060" and ":1060" both listen on port 1060`},
		// The dual-stack wildcard holds the IPv4 one.
		{[]string{"0.0.0.0:1060", ":1060"}, `":1060" and "0.0.0.0:1060" both listen on port 1060: ":1060" is already every interface, IPv4 and IPv6`},
		// A host name is some interface of the dual-stack wildcard.
		{[]string{":1060", "localhost:1060"}, `":1060" and "localhost:1060" both listen on port 1060`},
		// The IPv4 wildcard holds every IPv4 address of its port.
		{[]string{"127.0.0.1:1060", "0.0.0.0:1060"}, `"0.0.0.0:1060" and "127.0.0.1:1060" both listen on port 1060: "0.0.0.0:1060" is already every IPv4 interface`},
		// The IPv4 wildcard beside an IPv6 address: two families.
		{[]string{"0.0.0.0:1060", "[::1]:1060"}, ""},
		// Another port.
		{[]string{":1060", "[::1]:1061"}, ""},
		// Port 0 is a new port for each entry.
		{[]string{":0", "127.0.0.1:0"}, ""},
		// The same entry twice is bound once.
		{[]string{":1060", ":1060"}, ""},
		// One address of each family.
		{[]string{"127.0.0.1:1060", "[::1]:1060"}, ""},
		// A host name beside the IPv4 wildcard may be IPv6: left to bind.
		{[]string{"0.0.0.0:1060", "localhost:1060"}, ""},
	}
	for _, tt := range tests {
		c := Default()
		c.Server.Listen = tt.listen
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("listen = %q: %v, want valid", tt.listen, err)
		case tt.want != "" && err == nil:
			t.Errorf("listen = %q valid, want an error containing %q", tt.listen, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("listen = %q: %q, want it to contain %q", tt.listen, err, tt.want)
		}
	}
}
