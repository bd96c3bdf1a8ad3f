// Package daemon owns the zend process: turning a configuration into a
// running protocol.Server (listen sockets with the system's backlog, the
// open-file limit, log output) through one assembly path for "zend run",
// "zend start" and the new daemon of an upgrade (assemble.go); the
// daemon(7) stages of "zend start"; the boundary between root and
// daemon.user (package trust: root's files only in folders only root can
// change, opened with openat and O_NOFOLLOW; the lock and pidfile; the
// privilege drop; a pid proven before it is signalled); the single signal
// loop (SIGTERM/SIGINT drain, a second one forces the exit, SIGHUP
// reloads, SIGUSR1 reopens the log, SIGUSR2 upgrades); and the commands
// that act on a running daemon (stop, reload, reopen, status, upgrade).
//
// Its sub-packages hold what the inetd binaries share with it, so that
// they link none of the rest (the metrics stack above all): logsink (the
// log: file, stderr, syslog, journal), settings (configuration to
// protocol settings), trust (the ownership model) and inetd (in-zen1's
// and in-zen2's start). It imports config, protocol and those, and is
// imported only by the zend command.
package daemon
