package protocol

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds, in seconds, of the question latency
// histogram: from a question's last byte read to its answer written.
var LatencyBounds = []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1, 10}

// latencyHist counts question latencies without locks.
type latencyHist struct {
	counts [16]atomic.Uint64 // len(LatencyBounds)+1, the last for +Inf
	sumNs  atomic.Uint64
	n      atomic.Uint64
}

// observe records n questions answered d after they were read.
func (h *latencyHist) observe(d time.Duration, n int) {
	if n <= 0 {
		return
	}
	sec := d.Seconds()
	i := 0
	for i < len(LatencyBounds) && sec > LatencyBounds[i] {
		i++
	}
	h.counts[i].Add(uint64(n))
	h.sumNs.Add(uint64(max(d, 0)) * uint64(n))
	h.n.Add(uint64(n))
}

// Refusal reasons, as counted in Metrics.Refused.
const (
	RefusedAccess    = "access"
	RefusedPerSource = "per_source_limit"
	RefusedRate      = "accept_rate_limit"
	RefusedProxy     = "proxy_header"
)

var refusalReasons = [...]string{
	refusedAccess:    RefusedAccess,
	refusedPerSource: RefusedPerSource,
	refusedRate:      RefusedRate,
	refusedProxy:     RefusedProxy,
}

// Metrics is a snapshot of what a server has done since it started.
type Metrics struct {
	Open     int64             // conversations open
	Accepted uint64            // connections accepted
	Answers  map[string]uint64 // questions answered, by answer
	Unknown  uint64            // questions answered with UnknownAnswer
	Refused  map[string]uint64 // connections refused, by reason
	// Latency: cumulative counts per LatencyBounds (and +Inf last), their
	// total and the sum of latencies in seconds.
	LatencyCounts []uint64
	LatencyCount  uint64
	LatencySum    float64
}

// Metrics returns the server's counters.
func (s *Server) Metrics() Metrics {
	m := Metrics{
		Open:     s.open.Load(),
		Accepted: s.total.Load(),
		Unknown:  s.unknownHits.Load(),
		Answers:  map[string]uint64{},
		Refused:  map[string]uint64{},
	}
	s.mu.Lock()
	for ans, c := range s.answerHits {
		m.Answers[ans] = c.Load()
	}
	s.mu.Unlock()
	for i, r := range refusalReasons {
		m.Refused[r] = s.refusedBy[i].Load()
	}
	var cum uint64
	for i := range s.latency.counts {
		cum += s.latency.counts[i].Load()
		m.LatencyCounts = append(m.LatencyCounts, cum)
	}
	m.LatencyCount = cum
	m.LatencySum = float64(s.latency.sumNs.Load()) / 1e9
	return m
}

// answerCounter returns the counter of an answer, kept across reloads so
// the counts only grow.
func (s *Server) answerCounter(ans string) *atomic.Uint64 {
	if c := s.answerHits[ans]; c != nil {
		return c
	}
	c := new(atomic.Uint64)
	s.answerHits[ans] = c
	return c
}

// refusal is why a connection is not served: its kind, which the metrics
// count (never told apart by the text), and what the log says.
type refusal struct {
	kind   refusalKind
	detail string
}

// refusalKind indexes refusalReasons and Server.refusedBy.
type refusalKind uint8

const (
	refusedAccess refusalKind = iota
	refusedPerSource
	refusedRate
	refusedProxy
)

// via names the proxy a refused client came through.
func (r *refusal) via(proxy netip.AddrPort) refusal {
	return refusal{kind: r.kind, detail: r.detail + " (via " + proxy.String() + ")"}
}
