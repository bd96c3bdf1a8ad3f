// Package inetd starts the inetd binaries, in-zen1 and in-zen2: fds 1 and
// 2 moved off the client's socket before anything can write (GuardStdio),
// the command line, the configuration and the log (Boot, with
// logsink.Inetd's fallbacks), and the socket inetd passed on fd 0 (Conn
// for nowait mode, Listener for wait mode, told apart by IsListening).
//
// It is all of zend that in-zen1 and in-zen2 link besides protocol,
// config, logsink and settings: inetd starts one in-zen1 per connection,
// so what it links costs every client its start-up. It must not import
// package daemon, which brings the metrics stack (Prometheus and
// protobuf, whose init reads and hashes the executable); CI checks that
// with go list -deps.
package inetd
