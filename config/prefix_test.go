package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestParsePrefix checks the prefixes of [access] and server.proxy_trusted:
// clients are matched by their IPv4 address when they have one (an IPv4
// client of a dual-stack socket arrives as ::ffff:a.b.c.d), so an
// IPv4-mapped entry must become the IPv4 prefix it names, or it never
// matches. want is the prefix, or a substring of the error.
func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		// An IPv4 address is a prefix of one host.
		{"192.0.2.7", "192.0.2.7/32", false},
		// An IPv4 CIDR, its host bits cleared.
		{"10.1.2.3/8", "10.0.0.0/8", false},
		// An IPv6 address is a prefix of one host.
		{"2001:db8::1", "2001:db8::1/128", false},
		// An IPv6 CIDR, its host bits cleared.
		{"2001:db8::1/32", "2001:db8::/32", false},
		// ::/0 stays all of IPv6: IPv4 clients match IPv4 entries only.
		{"::/0", "::/0", false},
		// An IPv4-mapped address is its IPv4 address.
		{"::ffff:127.0.0.3", "127.0.0.3/32", false},
		// The entry: an IPv4-mapped /128 is one IPv4 host.
		{"::ffff:127.0.0.3/128", "127.0.0.3/32", false},
		// A mapped /120 is an IPv4 /24, host bits cleared.
		{"::ffff:192.0.2.66/120", "192.0.2.0/24", false},
		// The mapped /96 is all of IPv4.
		{"::ffff:0:0/96", "0.0.0.0/0", false},
		// Written in hexadecimal, the same.
		{"::ffff:7f00:3/128", "127.0.0.3/32", false},
		// Shorter than /96 a mapped CIDR cuts into the ::ffff: marker and
		// would name no IPv4 client: refused, with the form to write.
		{"::ffff:10.0.0.0/8", `IPv4-mapped CIDR needs a length of 96 or more (::ffff:a.b.c.d/N is the IPv4 a.b.c.d/N-96): allowed is an IPv4 CIDR such as "10.0.0.0/8"`, true},
		// Not an address.
		{"localhost", "allowed is an IPv4 or IPv6 address or CIDR", true},
		// A length past the family's bits.
		{"10.0.0.0/33", "allowed is an IPv4 or IPv6 address or CIDR", true},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in)
		switch {
		case tt.err && err == nil:
			t.Errorf("ParsePrefix(%q) = %v, want an error containing %q", tt.in, p, tt.want)
		case tt.err && !strings.Contains(err.Error(), tt.want):
			t.Errorf("ParsePrefix(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		case !tt.err && err != nil:
			t.Errorf("ParsePrefix(%q): %v, want %s", tt.in, err, tt.want)
		case !tt.err && p.String() != tt.want:
			t.Errorf("ParsePrefix(%q) = %v, want %s", tt.in, p, tt.want)
		}
	}
}

// TestIPv6PrefixKey checks limits.ipv6_prefix, the IPv6 prefix the
// per-source limits count a client under: its default, the file, the
// environment, and its bounds. want is the value, or a substring of the
// error when err is set.
func TestIPv6PrefixKey(t *testing.T) {
	tests := []struct {
		name, file string
		env        []string
		want       string
		err        bool
	}{
		// Unset: a /64, what one host commonly holds.
		{"default", "", nil, "64", false},
		// From the file.
		{"file", "[limits]\nipv6_prefix = 56\n", nil, "56", false},
		// The environment overrides the file.
		{"environment", "[limits]\nipv6_prefix = 56\n", []string{"ZEND_IPV6_PREFIX=48"}, "48", false},
		// The shortest prefix: half of all addresses is one source.
		{"lower bound", "[limits]\nipv6_prefix = 1\n", nil, "1", false},
		// The longest: every address is a source, as IPv4 is.
		{"upper bound", "[limits]\nipv6_prefix = 128\n", nil, "128", false},
		// 0 would make every IPv6 client one source.
		{"zero", "[limits]\nipv6_prefix = 0\n", nil, "zend.toml:2: limits.ipv6_prefix: 0: allowed is 1 to 128", true},
		// An IPv6 address has 128 bits.
		{"above", "[limits]\nipv6_prefix = 129\n", nil, "zend.toml:2: limits.ipv6_prefix: 129: allowed is 1 to 128", true},
		// From the environment, the error names the variable.
		{"bad environment", "", []string{"ZEND_IPV6_PREFIX=-1"}, "environment ZEND_IPV6_PREFIX: limits.ipv6_prefix: -1: allowed is 1 to 128", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Source{Path: write(t, tt.file), Environ: tt.env}.Load()
			switch {
			case tt.err && err == nil:
				t.Fatalf("loaded ipv6_prefix = %d, want an error containing %q", c.Limits.IPv6Prefix, tt.want)
			case tt.err && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			case !tt.err && err != nil:
				t.Fatal(err)
			case !tt.err && fmt.Sprint(c.Limits.IPv6Prefix) != tt.want:
				t.Fatalf("ipv6_prefix = %d, want %s", c.Limits.IPv6Prefix, tt.want)
			}
		})
	}
}
