package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"zend/daemon"
)

// cmdStatus reports on the daemon with LSB exit codes: 0 running, 1 dead
// but the pidfile exists, 3 not running, 4 unknown (the configuration file
// or the pidfile cannot be read).
func cmdStatus(g *global, stdout io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "status takes no arguments, got " + g.args[0]}
	}
	r, err := daemon.QueryDaemon(g.source)
	if err != nil {
		return &exitError{code: 4, msg: err.Error()} // LSB: status unknown
	}
	switch r.State {
	case daemon.NotRunning:
		fmt.Fprintln(stdout, "zend is not running")
		return &exitError{code: 3}
	case daemon.Stale:
		fmt.Fprintf(stdout, "zend is dead, but its pidfile %s exists (pid %d)\n", r.Pidfile, r.Pid)
		return &exitError{code: 1}
	}
	fmt.Fprintf(stdout, "zend is running (pid %d)\n", r.Pid)
	if r.Warning != "" {
		fmt.Fprintf(stdout, "  warning: %s\n", r.Warning)
	}
	if r.Status == nil {
		fmt.Fprintf(stdout, "  no details: %v\n", r.Err)
		return nil
	}
	st := r.Status
	fmt.Fprintf(stdout, "  uptime:      %s (since %s)\n", printable(st.Uptime), st.Started.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(stdout, "  listening:   %s\n", printable(strings.Join(st.Listen, ", ")))
	fmt.Fprintf(stdout, "  engine:      %s\n", printable(st.Engine))
	fmt.Fprintf(stdout, "  connections: %d open, %d since start, %d refused\n", st.Open, st.Total, st.Refused)
	fmt.Fprintf(stdout, "  questions:   %d answered, %d of them unknown\n", st.Answered, st.Unknown)
	fmt.Fprintf(stdout, "  config:      %s\n", printable(st.Config))
	fmt.Fprintf(stdout, "  log:         %s\n", printable(st.Log))
	if st.User != "" {
		fmt.Fprintf(stdout, "  user:        %s\n", printable(st.User))
	}
	if st.LastReload.Gen > 0 {
		verdict := "ok"
		if !st.LastReload.OK {
			verdict = "failed: " + printable(st.LastReload.Error)
		}
		fmt.Fprintf(stdout, "  last reload: %s at %s\n", verdict, st.LastReload.At.Format("2006-01-02 15:04:05 MST"))
	}
	if st.LastUpgrade.Gen > 0 {
		verdict := fmt.Sprintf("ok, pid %d took over", st.LastUpgrade.NewPid)
		if !st.LastUpgrade.OK {
			verdict = "failed: " + printable(st.LastUpgrade.Error)
		}
		fmt.Fprintf(stdout, "  last upgrade: %s at %s\n", verdict, st.LastUpgrade.At.Format("2006-01-02 15:04:05 MST"))
	}
	for _, p := range st.Pending {
		fmt.Fprintf(stdout, "  needs restart: %s\n", printable(p))
	}
	return nil
}

// printable returns s with control characters escaped: what the daemon
// reports is printed on root's terminal.
func printable(s string) string {
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}
