// Package protocol owns the Zen-of-Python question/answer protocol of the
// chapter "Server Architecture": the wire format (framing of questions), the
// answer table, one conversation on one connection, and the server engines
// that accept connections on a listener and run conversations on them
// (single, pool, goroutine, and eventloop on Linux).
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
