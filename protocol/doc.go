// Package protocol owns the Zen-of-Python question/answer protocol of the
// chapter "Server Architecture": the wire format (framing of questions), the
// answer table, one conversation on one connection, and the server engines
// that accept connections on a listener and run conversations on them
// (single, pool, goroutine, and eventloop on Linux).
//
// The conversation is written once, in session.go: a session has no
// socket in it (bytes and the time in, answers and an ending out) and
// owns framing, the answer table, the output bound, every timeout, the
// PROXY header and the drain. The engines only move bytes between sockets
// and sessions: conn.go for the engines with a goroutine per conversation,
// el_conn.go for the event loop.
//
// A question is the bytes up to and including the next '?'. Whitespace
// (space, tab, CR, LF) before a question is ignored. The answer is written
// back with no added bytes. A connection may ask any number of questions,
// pipelined or split across reads; every question gets its answer, in order.
//
// The package imports no other zend package: it takes a listener in and
// writes answers out. Processes, signals, configuration files and log files
// belong to package daemon.
package protocol
