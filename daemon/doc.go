// Package daemon owns the zend process: turning a configuration into a
// running protocol.Server (listen sockets with the system's backlog, the
// open-file limit, log output), the foreground mode of "zend run" with its
// single signal loop (SIGTERM/SIGINT drain, a second one forces the exit,
// SIGHUP reloads), and the reload of a running server.
//
// It imports config and protocol and is imported only by the commands.
package daemon
