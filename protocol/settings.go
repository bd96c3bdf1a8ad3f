package protocol

import "time"

// Limits bound what one connection and the whole server may cost.
type Limits struct {
	// MaxConnections is the number of conversations the goroutine and
	// eventloop engines run at once; above it they stop accepting and the
	// kernel's listen backlog holds new clients (single and pool are
	// bounded by their workers). <= 0 means no limit.
	MaxConnections int
	// MaxQuestionBytes is the longest question allowed, '?' included.
	// A longer one closes the connection. <= 0 means no limit.
	MaxQuestionBytes int
	// IdleTimeout closes a connection that sends nothing for this long
	// between questions. <= 0 means no timeout.
	IdleTimeout time.Duration
	// QuestionTimeout closes a connection whose question is not complete
	// this long after its first byte arrived. <= 0 means no timeout.
	QuestionTimeout time.Duration
	// WriteTimeout closes a connection that does not take its answers
	// for this long. <= 0 means no timeout.
	WriteTimeout time.Duration
	// MaxConnectionsPerIP is how many connections one source (a client
	// address, an IPv6 prefix: see IPv6Prefix) may have open; more are
	// closed at once. <= 0 means no limit.
	MaxConnectionsPerIP int
	// AcceptRatePerIP is how many new connections a second one source
	// may open (a token bucket of that size); more are closed at once.
	// <= 0 means no limit.
	AcceptRatePerIP int
	// SendBuffer is set as each accepted connection's SO_SNDBUF, so a
	// client that asks and never reads holds a bounded share of kernel
	// memory. <= 0 leaves it to the kernel.
	SendBuffer int
	// IPv6Prefix is how many leading bits of an IPv6 client address name
	// its source in the per-source limits: a host commonly holds a whole
	// /64, and counting each of its addresses apart would let it pass
	// any limit. An IPv4 client (also one reported as ::ffff:a.b.c.d) is
	// its own source. <= 0 or >= 128 counts each IPv6 address apart.
	IPv6Prefix int
}

// Settings are the parts of a server that can change while it runs
// (Server.Update): the answer table, the simulated cost of an answer and
// the limits.
type Settings struct {
	Answers *Answers
	// AnswerDelay is slept before each answer, to simulate an expensive
	// answer as the chapter's time.sleep does.
	AnswerDelay time.Duration
	Limits      Limits
	// Access decides which client addresses are served; nil serves all.
	Access *Access
	// Proxy configures the PROXY protocol.
	Proxy Proxy
}
