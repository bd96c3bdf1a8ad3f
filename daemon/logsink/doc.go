// Package logsink is where zend's programs log: a file (reopened on
// SIGUSR1 and rotated by size with lumberjack, put on fds 1 and 2 so that
// a crash's dump lands in it), stderr, the local syslog socket (in
// syslog(3)'s form or RFC 5424's) or systemd's journal. The daemon's log
// is a Sink (New, FilePath); an inetd binary's is Inetd, with its
// fallbacks. It imports config only.
package logsink
