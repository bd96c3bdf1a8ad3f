package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// Access is tcpd's hosts.allow/hosts.deny decision over addresses and
// prefixes: an address that matches Allow is served; else one that
// matches Deny is refused; anything else is served. The zero value and nil
// serve everyone.
type Access struct {
	Allow, Deny []netip.Prefix
}

// Permit reports whether ip may be served.
func (a *Access) Permit(ip netip.Addr) bool {
	if a == nil {
		return true
	}
	ip = ip.Unmap()
	for _, p := range a.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	for _, p := range a.Deny {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Proxy configures the PROXY protocol (v1 and v2, as HAProxy's
// send-proxy and send-proxy-v2 write it): connections from Trusted peers
// may start with a header naming the real client, which logs, access
// control and per-source limits then use; from any other peer a header is
// refused.
type Proxy struct {
	Enabled bool
	Trusted []netip.Prefix
}

func (p *Proxy) trusts(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, t := range p.Trusted {
		if t.Contains(ip) {
			return true
		}
	}
	return false
}

// The two signatures of the PROXY protocol.
var (
	proxyV1Sig = []byte("PROXY ")
	proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// maxProxyHeader bounds a header: v1 is at most 107 bytes; v2 may carry
// TLVs, of which zend allows 4 KiB.
const maxProxyHeader = 16 + 4096

// ErrProxyHeader reports a PROXY header that is malformed, too long, or
// sent by a peer that is not trusted.
var ErrProxyHeader = errors.New("bad PROXY header")

// errV1TooLong is the error of 107 bytes starting "PROXY " with neither
// a line's end nor a '?': not a header, and from a peer that is not a
// trusted proxy, the start of a long question.
var errV1TooLong = fmt.Errorf("%w: v1 header longer than 107 bytes", ErrProxyHeader)

// splitProxyHeader looks at the first bytes of a connection. It returns
// the header's length when buf starts with a whole one (n > 0), n == 0
// when buf does not start with a header, and more when buf is the start
// of one that needs more bytes.
func splitProxyHeader(buf []byte) (n int, more bool, err error) {
	for _, sig := range [][]byte{proxyV1Sig, proxyV2Sig} {
		k := min(len(buf), len(sig))
		if !bytes.Equal(buf[:k], sig[:k]) {
			continue
		}
		if len(buf) < len(sig) {
			return 0, true, nil
		}
		if sig[0] == 'P' {
			// Only the first 107 bytes (a v1 header's longest) decide,
			// so the decision does not depend on how TCP split them.
			head := buf[:min(len(buf), 107)]
			i := bytes.Index(head, []byte("\r\n"))
			if q := bytes.IndexByte(head, '?'); q >= 0 && (i < 0 || q < i) {
				// A '?' before the line's end: a question that starts
				// with "PROXY ", never a header (which has none).
				return 0, false, nil
			}
			switch {
			case i >= 0:
				return i + 2, false, nil
			case len(buf) < 107:
				return 0, true, nil
			}
			return 0, false, errV1TooLong
		}
		if len(buf) < 16 {
			return 0, true, nil
		}
		total := 16 + int(binary.BigEndian.Uint16(buf[14:16]))
		if total > maxProxyHeader {
			return 0, false, fmt.Errorf("%w: v2 header of %d bytes", ErrProxyHeader, total)
		}
		if len(buf) < total {
			return 0, true, nil
		}
		return total, false, nil
	}
	return 0, false, nil
}

// parseProxyHeader parses a whole header (as splitProxyHeader measured it)
// with go-proxyproto and returns the client it names; a LOCAL header (a
// health check from the proxy itself) names peer, and local is true.
func parseProxyHeader(h []byte, peer netip.AddrPort) (client netip.AddrPort, local bool, err error) {
	hdr, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(h)))
	if err != nil {
		return peer, false, fmt.Errorf("%w: %v", ErrProxyHeader, err)
	}
	if hdr.Command.IsLocal() {
		return peer, true, nil
	}
	src, _, ok := hdr.TCPAddrs()
	if !ok {
		return peer, false, fmt.Errorf("%w: not TCP (%v)", ErrProxyHeader, hdr.TransportProtocol)
	}
	ap := src.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), false, nil
}

// sources tracks per-source connections and their rate, like sshd's
// PerSourceMaxStartups and xinetd's per_source and cps. A source is what
// sourceKey makes of a client address under the IPv6 prefix in force.
type sources struct {
	mu    sync.Mutex
	m     map[netip.Addr]*source // by sourceKey(address, bits)
	bits  int                    // the IPv6 prefix m is keyed on (Limits.IPv6Prefix)
	held  map[netip.Addr]int     // connections counted, by client address
	swept time.Time
}

type source struct {
	open   int
	tokens float64
	rate   float64
	at     time.Time
}

// sourceKey returns the source a client address counts under in the
// per-source limits. An IPv4 address is its own source, also when an
// IPv6 socket reports it as ::ffff:a.b.c.d (masking that to a /64 would
// make all of IPv4 one source). An IPv6 address counts under its first
// bits bits, its zone dropped: a host commonly has a whole /64 to pick
// addresses from, so counting each address lets it pass any limit. bits
// <= 0 or >= 128 keys on the whole address.
func sourceKey(ip netip.Addr, bits int) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if !ip.Is6() || bits <= 0 || bits >= 128 {
		return ip
	}
	p, _ := ip.Prefix(bits) // cannot fail: 0 < bits < 128, no zone
	return p.Addr()
}

// describe names a source in a refusal, and the key that made it: an
// IPv6 prefix is named, an address is not (the log line names the client).
func (s *sources) describe(key netip.Addr) (from, setting string) {
	if key.Is6() && s.bits > 0 && s.bits < 128 {
		return fmt.Sprintf(" from %s/%d", key, s.bits), ", limits.ipv6_prefix"
	}
	return "", ""
}

// admit counts a new connection from ip, or says why it is refused.
// counted tells whether release must be called for it.
func (s *sources) admit(ip netip.Addr, lim Limits) (why *refusal, counted bool) {
	if lim.MaxConnectionsPerIP <= 0 && lim.AcceptRatePerIP <= 0 {
		return nil, false
	}
	ip = ip.Unmap().WithZone("")
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[netip.Addr]*source{}
		s.held = map[netip.Addr]int{}
		s.bits = lim.IPv6Prefix
	}
	if lim.IPv6Prefix != s.bits {
		s.rekey(lim, now)
	}
	if now.Sub(s.swept) > 10*time.Second {
		// Sources that burst once and never came back: their bucket is
		// full again.
		s.swept = now
		for a, src := range s.m {
			s.forget(a, src)
		}
	}
	key := sourceKey(ip, s.bits)
	src := s.m[key]
	if src == nil {
		src = &source{tokens: float64(lim.AcceptRatePerIP), rate: float64(lim.AcceptRatePerIP), at: now}
		s.m[key] = src
	}
	src.rate = float64(lim.AcceptRatePerIP)
	if lim.AcceptRatePerIP > 0 {
		src.refill(now)
		if src.tokens < 1 {
			s.forget(key, src)
			from, setting := s.describe(key)
			return &refusal{refusedRate, fmt.Sprintf("more than %d new connections a second%s (limits.accept_rate_per_ip%s)", lim.AcceptRatePerIP, from, setting)}, false
		}
	}
	if lim.MaxConnectionsPerIP > 0 && src.open >= lim.MaxConnectionsPerIP {
		from, setting := s.describe(key)
		return &refusal{refusedPerSource, fmt.Sprintf("%d connections open already%s (limits.max_connections_per_ip%s)", src.open, from, setting)}, false
	}
	if lim.AcceptRatePerIP > 0 {
		src.tokens--
	}
	src.open++
	s.held[ip]++
	return nil, true
}

// release uncounts a connection admitted from ip, under the source it
// counts under now (a reload may have changed the IPv6 prefix since).
func (s *sources) release(ip netip.Addr) {
	ip = ip.Unmap().WithZone("")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch n := s.held[ip]; n {
	case 0:
		return // not counted
	case 1:
		delete(s.held, ip)
	default:
		s.held[ip] = n - 1
	}
	key := sourceKey(ip, s.bits)
	if src := s.m[key]; src != nil {
		src.open--
		s.forget(key, src)
	}
}

// rekey counts the open connections under lim's IPv6 prefix, which a
// reload changed. Every accept-rate bucket starts full again: the bucket
// of a short prefix cannot be split among the longer ones it holds.
func (s *sources) rekey(lim Limits, now time.Time) {
	s.bits = lim.IPv6Prefix
	clear(s.m)
	rate := float64(lim.AcceptRatePerIP)
	for ip, n := range s.held {
		key := sourceKey(ip, s.bits)
		src := s.m[key]
		if src == nil {
			src = &source{tokens: rate, rate: rate, at: now}
			s.m[key] = src
		}
		src.open += n
	}
}

// refill adds the tokens earned since the last look.
func (src *source) refill(now time.Time) {
	src.tokens = min(src.rate, src.tokens+now.Sub(src.at).Seconds()*src.rate)
	src.at = now
}

// forget drops a source with nothing open and a full bucket, so the map
// holds only sources with connections or a recent burst.
func (s *sources) forget(ip netip.Addr, src *source) {
	src.refill(time.Now())
	if src.open <= 0 && src.tokens >= src.rate {
		delete(s.m, ip)
	}
}

// refusals rate-limits the log lines of refused connections, so a flood
// cannot fill the disk: at most refusalBurst lines, then one a second with
// the count of those not logged.
type refusals struct {
	mu      sync.Mutex
	tokens  float64
	at      time.Time
	dropped int
}

const refusalBurst = 20

// allow reports whether this refusal may be logged, and how many were not
// since the last one that was.
func (r *refusals) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.at.IsZero() {
		r.tokens = refusalBurst
	} else {
		r.tokens = min(refusalBurst, r.tokens+now.Sub(r.at).Seconds())
	}
	r.at = now
	if r.tokens < 1 {
		r.dropped++
		return false, 0
	}
	r.tokens--
	d := r.dropped
	r.dropped = 0
	return true, d
}

// refuse counts a refusal by its kind and logs it (rate-limited).
func (s *Server) refuse(client netip.AddrPort, why refusal) {
	s.refusedBy[why.kind].Add(1)
	if ok, dropped := s.refusals.allow(); ok {
		if dropped > 0 {
			s.log.Warn("refused", "client", client.String(), "reason", why.detail, "not_logged_before", dropped)
		} else {
			s.log.Warn("refused", "client", client.String(), "reason", why.detail)
		}
	}
}

// untrustedHeader is the error of a PROXY header from a peer that is not a
// trusted proxy.
func untrustedHeader(peer netip.AddrPort) error {
	return fmt.Errorf("%w: from %s, which is not in server.proxy_trusted", ErrProxyHeader, peer.Addr())
}

// proxyRefusal is the refusal of a bad or untrusted PROXY header.
func proxyRefusal(err error) refusal { return refusal{refusedProxy, err.Error()} }

// admit decides whether a client (its real address) is served: access
// control, then per-source limits. It returns why not (nil when served),
// and whether the connection was counted (then s.srcs.release is due at
// its end).
func (s *Server) admit(client netip.AddrPort, st *Settings) (*refusal, bool) {
	if !client.IsValid() {
		return nil, false // not an IP connection (a pipe in tests)
	}
	if !st.Access.Permit(client.Addr()) {
		return &refusal{refusedAccess, "denied by [access]"}, false
	}
	return s.srcs.admit(client.Addr(), st.Limits)
}

// addrPortOf returns a net.Addr as netip.AddrPort (zero when not IP).
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
