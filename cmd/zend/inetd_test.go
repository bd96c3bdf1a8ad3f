package main_test

// Tests of in-zen1 and in-zen2: handed a socket directly (as inetd does),
// then under the real openbsd-inetd, tcpd and xinetd.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ownLog is a log file in a folder only the test's user can change: where
// in-zen, run directly by the test (as root in CI), may write its log.
func ownLog(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "in-zen.log")
}

// shared is a folder every user can use (inetd runs in-zen as nobody).
func shared(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "zend-inetd-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// tool returns the path of a Debian tool the test needs: it fails when
// CI is set and the tool is missing, else skips.
func tool(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if systemTests() {
		t.Fatalf("%s is not installed (.ci/run installs it)", name)
	}
	t.Skipf("%s is not installed; the full run (%s=1) needs it", name, systemEnv)
	return ""
}

// socketPair returns both ends of a loopback TCP connection; the server
// end as a file to hand to a child.
func socketPair(t testing.TB) (client net.Conn, server *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server, err = sc.(*net.TCPConn).File()
	sc.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	client.SetDeadline(time.Now().Add(20 * time.Second))
	return client, server
}

// startWithSocket starts a binary with f on fds 0, 1 and 2, as inetd does.
func startWithSocket(t testing.TB, name string, f *os.File, args ...string) *exec.Cmd {
	t.Helper()
	return startInetd(t, filepath.Join(bin, name), f, nil, args...)
}

// listenerFile returns a loopback listener and its socket as a file, as
// inetd hands it to a wait-mode server; both are closed when t ends.
func listenerFile(t testing.TB) (net.Listener, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lf.Close() })
	return ln, lf
}

func fdTarget(pid, fd int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	return s
}

func TestInZen1WithSocketOnStdin(t *testing.T) {
	logf := ownLog(t)
	client, server := socketPair(t)
	cmd := startWithSocket(t, "in-zen1", server, "-log", logf)
	server.Close()
	r := bufio.NewReader(client)
	for q, want := range map[string]string{"Beautiful is better than?": "Ugly.", "\r\nExplicit is better than?": "Implicit.", "Simple is better than?": "Complex."} {
		io.WriteString(client, q)
		if a, err := r.ReadString('.'); err != nil || a != want {
			t.Fatalf("%q: %q %v", q, a, err)
		}
	}
	// Pipelined.
	io.WriteString(client, "??Simple is better than?")
	want := "Error: unknown aphorism.Error: unknown aphorism.Complex."
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
		t.Fatalf("pipelined: %q %v", got, err)
	}
	// fds 1 and 2 are the log, fd 0 /dev/null: only the connection itself
	// holds the socket.
	pid := cmd.Process.Pid
	if fdTarget(pid, 1) != logf || fdTarget(pid, 2) != logf || fdTarget(pid, 0) != "/dev/null" {
		t.Fatalf("fds 0, 1, 2 -> %q %q %q", fdTarget(pid, 0), fdTarget(pid, 1), fdTarget(pid, 2))
	}
	// Hanging up ends it with exit 0.
	client.(*net.TCPConn).CloseWrite()
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after hang-up: %v, want EOF", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("in-zen1 exit: %v", err)
	}
	logText, _ := os.ReadFile(logf)
	if !regexp.MustCompile(`msg=accepted prog=in-zen1 pid=\d+ client=127\.0\.0\.1:\d+`).Match(logText) || !bytes.Contains(logText, []byte("msg=closed")) {
		t.Fatalf("log:\n%s", logText)
	}
}

// TestInZen1PanicGoesToLog: a Go runtime crash (SIGQUIT dumps every
// goroutine to fd 2) lands in the log, never on the client's socket.
func TestInZen1PanicGoesToLog(t *testing.T) {
	logf := ownLog(t)
	client, server := socketPair(t)
	cmd := startWithSocket(t, "in-zen1", server, "-log", logf)
	server.Close()
	r := bufio.NewReader(client)
	io.WriteString(client, "Simple is better than?")
	if a, _ := r.ReadString('.'); a != "Complex." {
		t.Fatalf("answer %q", a)
	}
	cmd.Process.Signal(syscall.SIGQUIT)
	cmd.Wait()
	rest, _ := io.ReadAll(r)
	if len(rest) > 0 {
		t.Fatalf("the client received %d bytes of the crash: %q", len(rest), rest[:min(len(rest), 200)])
	}
	logText, _ := os.ReadFile(logf)
	if !bytes.Contains(logText, []byte("SIGQUIT")) || !bytes.Contains(logText, []byte("goroutine ")) {
		t.Fatalf("the crash is not in the log:\n%s", logText)
	}
}

func TestInZen2WithListenerOnStdin(t *testing.T) {
	logf := ownLog(t)
	ln, lf := listenerFile(t)
	addr := ln.Addr().String()

	cmd := startWithSocket(t, "in-zen2", lf, "-log", logf, "-timeout", "1s")
	// Several clients at once, one of them kept open past the timeout.
	held := conversation(t, addr)
	if a := held("Beautiful is better than?"); a != "Ugly." {
		t.Fatalf("%q", a)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); client(t, addr) }()
	}
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // past -timeout, but a conversation is open
	if a := held("Simple is better than?"); a != "Complex." {
		t.Fatalf("held connection after the timeout: %q", a)
	}
	// Now idle: it exits 0 on its own.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	closeAll(t)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("in-zen2 exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("in-zen2 did not exit when idle")
	}
	// The socket is inetd's (here the test's): still listening, and a
	// client that comes now waits in the backlog for the next in-zen2.
	c := conversation(t, addr)
	startWithSocket(t, "in-zen2", lf, "-log", logf, "-timeout", "1s")
	if a := c("Explicit is better than?"); a != "Implicit." {
		t.Fatalf("backlogged client: %q", a)
	}
	logText, _ := os.ReadFile(logf)
	if !bytes.Contains(logText, []byte(`msg="no new connection, exiting" prog=in-zen2`)) {
		t.Fatalf("log:\n%s", logText)
	}
}

// closeAll closes the connections conversation opened so far.
func closeAll(t *testing.T) {
	t.Helper()
	convMu.Lock()
	defer convMu.Unlock()
	for _, c := range convs[t.Name()] {
		c.Close()
	}
	delete(convs, t.Name())
}

func TestInZen2RefusesConnectedSocket(t *testing.T) {
	logf := ownLog(t)
	client, server := socketPair(t)
	cmd := startWithSocket(t, "in-zen2", server, "-log", logf)
	server.Close()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	if n, _ := client.Read(make([]byte, 10)); n != 0 {
		t.Fatal("bytes sent to the client")
	}
	logText, _ := os.ReadFile(logf)
	if !bytes.Contains(logText, []byte("SO_ACCEPTCONN is 0")) {
		t.Fatalf("log lacks the reason:\n%s", logText)
	}
}

// inetdSetup is a private inetd configuration built from the shipped
// packaging/inetd/inetd.conf with ports, paths and user rewritten.
type inetdSetup struct {
	dir, conf, log, cfg string
	port1, port2        int
}

func newInetdSetup(t *testing.T, tcpd bool) *inetdSetup {
	t.Helper()
	s := &inetdSetup{dir: shared(t)}
	s.log = filepath.Join(s.dir, "in-zen.log")
	s.cfg = filepath.Join(s.dir, "zend.toml")
	os.WriteFile(s.cfg, []byte("[answers]\n\"Readability counts?\" = \"Yes.\"\n"), 0o644)
	s.port1, s.port2 = freePort(t), freePort(t)
	shipped, err := os.ReadFile("../../packaging/inetd/inetd.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The shipped lines: the nowait one (its tcpd variant is commented
	// out below it) and the wait one.
	var lines []string
	for _, line := range strings.Split(string(shipped), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "#"))
		if len(f) < 7 || !strings.HasPrefix(f[0], "127.0.0.1:") {
			continue
		}
		viaTcpd := f[5] == "/usr/sbin/tcpd"
		if f[3] == "nowait" && viaTcpd != tcpd {
			continue
		}
		port := s.port1
		if f[3] == "wait" {
			port = s.port2
		} else {
			f[3] = "nowait.1000" // openbsd-inetd allows 256 a minute by default
		}
		f[0] = fmt.Sprintf("127.0.0.1:%d", port)
		f[4] = "nobody"
		for i := range f {
			f[i] = strings.NewReplacer("/usr/sbin/in-zen", filepath.Join(bin, "in-zen"), "8s", "1s").Replace(f[i])
		}
		// The shipped lines read /etc/zend.toml (the default); the test's
		// configuration and log are elsewhere.
		f = append(f, "-c", s.cfg, "-log", s.log)
		lines = append(lines, strings.Join(f, " "))
	}
	if len(lines) != 2 {
		t.Fatalf("expected two service lines from packaging/inetd/inetd.conf, got %q", lines)
	}
	s.conf = filepath.Join(s.dir, "inetd.conf")
	os.WriteFile(s.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	t.Cleanup(func() {
		for _, pid := range processesWith(s.log) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// report prints inetd's output and the in-zen log when a test failed:
// inetd writes its errors to syslog only.
func (s *inetdSetup) report(t *testing.T, p *proc) {
	t.Cleanup(func() {
		if t.Failed() {
			logText, _ := os.ReadFile(s.log)
			conf, _ := os.ReadFile(s.conf)
			t.Logf("inetd.conf:\n%s\ninetd output:\n%s\nin-zen log:\n%s", conf, p.log(), logText)
		}
	})
}

func TestUnderInetd(t *testing.T) {
	needSystem(t, "in-zen1 and in-zen2 under the real openbsd-inetd")
	inetd := tool(t, "inetd", "/usr/sbin/inetd")
	s := newInetdSetup(t, false)
	p := start(t, inetd, nil, "-d", s.conf)
	s.report(t, p)
	p.waitLog(t, `ADD: 127\.0\.0\.1:`+strconv.Itoa(s.port2))
	addr1 := fmt.Sprintf("127.0.0.1:%d", s.port1)
	addr2 := fmt.Sprintf("127.0.0.1:%d", s.port2)

	// Both modes answer the three questions and the config's own.
	client(t, addr1)
	client(t, addr2)
	if a := askOnce(t, addr1, "Readability counts?"); a != "Yes." {
		t.Errorf("in-zen1 did not read -c: %q", a)
	}

	// in-zen1's fds 1 and 2 are the log, not the socket.
	held := conversation(t, addr1)
	held("Simple is better than?")
	m := waitFileMatch(t, s.log, `msg=accepted prog=in-zen1 pid=(\d+) client=127\.0\.0\.1:\d+\n[^\n]*\z|msg=accepted prog=in-zen1 pid=(\d+)[^\n]*\n\z`)
	pid, _ := strconv.Atoi(m[1] + m[2])
	if fdTarget(pid, 1) != s.log || fdTarget(pid, 2) != s.log {
		t.Errorf("in-zen1 under inetd: fd 1 -> %q, fd 2 -> %q, want the log", fdTarget(pid, 1), fdTarget(pid, 2))
	}
	if uid := procStatus(t, pid, "Uid"); strings.Fields(uid)[0] != "65534" {
		t.Errorf("in-zen1 runs as uid %s, want nobody", uid)
	}
	closeAll(t)

	// 50 concurrent clients through in-zen1.
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); client(t, addr1) }()
	}
	wg.Wait()

	// in-zen2 serves several clients, exits after its timeout, and inetd
	// starts a fresh one for the next client.
	for i := 0; i < 5; i++ {
		client(t, addr2)
	}
	first := waitFileMatch(t, s.log, `msg="no new connection, exiting" prog=in-zen2 pid=(\d+)`)
	p.waitLog(t, first[1]+` reaped`)
	client(t, addr2)
	logText, _ := os.ReadFile(s.log)
	pids := map[string]bool{}
	for _, m := range regexp.MustCompile(`msg=listening prog=in-zen2 pid=(\d+)`).FindAllStringSubmatch(string(logText), -1) {
		pids[m[1]] = true
	}
	if len(pids) < 2 {
		t.Errorf("want a second in-zen2 after the first exited, saw pids %v", pids)
	}
}

// waitFileMatch waits up to 10 s for a file's content to match re.
func waitFileMatch(t *testing.T, path, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if m := rx.FindStringSubmatch(string(b)); m != nil {
			return m
		}
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s lacks %q:\n%s", path, re, b)
	return nil
}

// TestUnderTcpd: hosts.deny refuses one client address, another is
// served. The hosts files are bind-mounted over /etc in a private mount
// namespace.
func TestUnderTcpd(t *testing.T) {
	needSystem(t, "tcpd's hosts.allow and hosts.deny in front of in-zen1, with /etc bind-mounted")
	inetd := tool(t, "inetd", "/usr/sbin/inetd")
	tool(t, "tcpd", "/usr/sbin/tcpd")
	unshare := tool(t, "unshare", "/usr/bin/unshare")
	s := newInetdSetup(t, true)
	allow := filepath.Join(s.dir, "hosts.allow")
	deny := filepath.Join(s.dir, "hosts.deny")
	os.WriteFile(allow, []byte("in-zen1: 127.0.0.1\n"), 0o644)
	os.WriteFile(deny, []byte("in-zen1: ALL\n"), 0o644)
	p := start(t, unshare, nil, "--mount", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount --bind %s /etc/hosts.allow && mount --bind %s /etc/hosts.deny && exec %s -d %s", allow, deny, inetd, s.conf))
	s.report(t, p)
	p.waitLog(t, `ADD: 127\.0\.0\.1:`+strconv.Itoa(s.port1))
	addr := fmt.Sprintf("127.0.0.1:%d", s.port1)

	client(t, addr) // 127.0.0.1 is allowed
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "Beautiful is better than?")
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("127.0.0.2, denied by hosts.deny, got %q", b)
	}
	logText, _ := os.ReadFile(s.log)
	if bytes.Contains(logText, []byte("client=127.0.0.2")) {
		t.Fatal("a denied client reached in-zen1")
	}
}

// TestUnderXinetd runs the shipped xinetd service files (paths, ports and
// user rewritten) under the real xinetd.
func TestUnderXinetd(t *testing.T) {
	needSystem(t, "the shipped xinetd service files under the real xinetd")
	xinetd := tool(t, "xinetd", os.Getenv("XINETD"), "/var/tmp/zend-ci/xinetd/root/usr/sbin/xinetd", "/usr/sbin/xinetd")
	dir := shared(t)
	logf := filepath.Join(dir, "in-zen.log")
	cfg := filepath.Join(dir, "zend.toml")
	os.WriteFile(cfg, nil, 0o644)
	ports := map[string]int{"in-zen1": freePort(t), "in-zen2": freePort(t)}
	conf := fmt.Sprintf("defaults\n{\n\tlog_type = FILE %s\n}\n", filepath.Join(dir, "xinetd.log"))
	for _, name := range []string{"in-zen1", "in-zen2"} {
		b, err := os.ReadFile("../../packaging/xinetd/" + name)
		if err != nil {
			t.Fatal(err)
		}
		text := regexp.MustCompile(`(?m)^(\s*port\s*=).*$`).ReplaceAllString(string(b), "${1} "+strconv.Itoa(ports[name]))
		text = regexp.MustCompile(`(?m)^(\s*user\s*=).*$`).ReplaceAllString(text, "${1} nobody")
		text = regexp.MustCompile(`(?m)^(\s*group\s*=).*$`).ReplaceAllString(text, "${1} nogroup")
		text = strings.NewReplacer("/usr/sbin/"+name, filepath.Join(bin, name), "8s", "1s").Replace(text)
		// The shipped files read /etc/zend.toml (the default); the test's
		// configuration and log are elsewhere.
		args := "-c " + cfg + " -log " + logf
		if rx := regexp.MustCompile(`(?m)^(\s*server_args\s*=)`); rx.MatchString(text) {
			text = rx.ReplaceAllString(text, "${1} "+args)
		} else {
			text = regexp.MustCompile(`(?m)^(\s*server\s*=.*)$`).ReplaceAllString(text, "${1}\n\tserver_args = "+args)
		}
		conf += text
	}
	confPath := filepath.Join(dir, "xinetd.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	p := start(t, xinetd, nil, "-f", confPath, "-dontfork", "-pidfile", filepath.Join(dir, "xinetd.pid"))
	t.Cleanup(func() {
		for _, pid := range processesWith(logf) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			xl, _ := os.ReadFile(filepath.Join(dir, "xinetd.log"))
			il, _ := os.ReadFile(logf)
			t.Logf("xinetd.conf:\n%s\nxinetd output:\n%s\nxinetd log:\n%s\nin-zen log:\n%s", conf, p.log(), xl, il)
		}
	})
	addr1 := fmt.Sprintf("127.0.0.1:%d", ports["in-zen1"])
	addr2 := fmt.Sprintf("127.0.0.1:%d", ports["in-zen2"])
	waitDial(t, addr1)
	client(t, addr1)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); client(t, addr2) }()
	}
	wg.Wait()
	waitFileMatch(t, logf, `msg="no new connection, exiting" prog=in-zen2`)
	client(t, addr2) // xinetd starts a new one
	waitFileMatch(t, logf, `msg=accepted prog=in-zen1 pid=\d+ client=127\.0\.0\.1`)
}

// unanswered runs in-zen1 with config text on a fresh connection, asks a
// question, checks that nothing comes back, and returns in-zen1's exit
// code and log.
func unanswered(t *testing.T, config string) (int, string) {
	t.Helper()
	dir := shared(t)
	cfg := filepath.Join(dir, "zend.toml")
	os.WriteFile(cfg, []byte(config), 0o644)
	logf := ownLog(t)
	client, server := socketPair(t)
	cmd := startWithSocket(t, "in-zen1", server, "-c", cfg, "-log", logf)
	server.Close()
	io.WriteString(client, "Simple is better than?")
	if b, _ := io.ReadAll(client); len(b) != 0 {
		t.Fatalf("answered %q", b)
	}
	cmd.Wait()
	logText, _ := os.ReadFile(logf)
	return cmd.ProcessState.ExitCode(), string(logText)
}

// TestInZenAccess: [access] applies to the inetd binaries too.
func TestInZenAccess(t *testing.T) {
	_, log := unanswered(t, "[access]\ndeny = [\"127.0.0.0/8\"]\n")
	if !strings.Contains(log, `msg=refused`) || !strings.Contains(log, "denied by [access]") {
		t.Fatalf("log:\n%s", log)
	}
}

// needRoot skips a test that must run as root (to switch users, mount or
// boot a container), unless CI is set, where it fails: CI runs as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root")
}

// TestInZenBadConfig: a configuration that does not load stops the
// inetd binaries with exit 1 and a log line, never serving on defaults.
func TestInZenBadConfig(t *testing.T) {
	code, log := unanswered(t, "[limits]\nmax_connections = 0\n")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(log, "cannot load the configuration") || !strings.Contains(log, "limits.max_connections") {
		t.Fatalf("log:\n%s", log)
	}
}

// TestInZen2CannotServe: an in-zen2 whose configuration does not load
// takes the waiting clients off inetd's socket and closes them (they are
// told at once, not left to time out), stays for -timeout so that inetd
// does not start it again and again, then exits 1 (seen: inetd started
// it 259 times in a row while the client timed out).
func TestInZen2CannotServe(t *testing.T) {
	dir := shared(t)
	cfg := filepath.Join(dir, "zend.toml")
	os.WriteFile(cfg, []byte("[limits]\nmax_connections = 0\n"), 0o644)
	ln, lf := listenerFile(t)
	// A client waits before in-zen2 starts, as when inetd starts it.
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := startWithSocket(t, "in-zen2", lf, "-c", cfg, "-log", ownLog(t), "-timeout", "2s")
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 16)); n != 0 || err == nil || isNetTimeout(err) {
		t.Fatalf("the waiting client got %d bytes, %v; want its connection closed", n, err)
	}
	select {
	case <-exited:
		t.Fatal("in-zen2 exited as soon as it turned the client away: inetd would start it again at once")
	default:
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("in-zen2 did not exit after -timeout")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}
