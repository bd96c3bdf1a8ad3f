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
	"zend/daemon/trust"

	"golang.org/x/sys/unix"
)

// ownLog is a log file in a folder only the test's user can change: where
// in-zen, run directly by the test (as root in CI), may write its log.
func ownLog(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "in-zen.log")
}

// shared is a folder every user can read (and search) and only the
// test's user can change: for files that processes running as other
// users (zend, nobody, a container's) read. Root runs what is in it, so
// nobody else may rename or plant anything there (seen: a 0777 folder let
// any user swap the private /etc that root's inetd then read).
func shared(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "zend-shared-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// tool returns the path of a Debian tool the test needs: it fails when
// CI is set and the tool is missing, else skips. A candidate path is
// taken only when only root (or the test's user) can change it and the
// folders that lead to it: the test runs it, often as root.
func tool(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err != nil {
			continue
		}
		if err := trustedFile(c); err != nil {
			t.Fatalf("%s at %s: %v", name, c, err)
		}
		return c
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

// inetdByHand is openbsd-inetd set up as the README says, on a private
// host: the user zend made with the README's useradd, and the shipped
// lines of packaging/inetd/inetd.conf added to /etc/inetd.conf with only
// the ports and the binaries' folder changed (with tcpd, its commented
// line in place of the plain nowait one, as the file says). There is no
// /etc/zend.toml and no log folder: in-zen runs on the embedded defaults
// and logs to /dev/log.
type inetdByHand struct {
	host         *privateHost
	inetd        *proc
	addr1, addr2 string
}

// newInetdByHand writes the lines and starts inetd; prepare, when not
// nil, runs first (to write more of the private /etc).
func newInetdByHand(t *testing.T, tcpd bool, prepare func(h *privateHost)) *inetdByHand {
	t.Helper()
	inetd := tool(t, "inetd", "/usr/sbin/inetd")
	s := &inetdByHand{host: newPrivateHost(t)}
	port1, port2 := freePort(t), freePort(t)
	s.addr1, s.addr2 = fmt.Sprintf("127.0.0.1:%d", port1), fmt.Sprintf("127.0.0.1:%d", port2)
	shipped, err := os.ReadFile("../../packaging/inetd/inetd.conf")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(shipped), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "#"))
		if len(f) < 7 || !strings.HasPrefix(f[0], "127.0.0.1:") {
			continue
		}
		if f[3] == "nowait" && (f[5] == "/usr/sbin/tcpd") != tcpd {
			continue
		}
		port := port1
		if f[3] == "wait" {
			port = port2
		}
		line = strings.TrimPrefix(line, "#")
		line = strings.Replace(line, f[0], fmt.Sprintf("127.0.0.1:%d", port), 1)
		line = strings.ReplaceAll(line, "/usr/sbin/in-zen", filepath.Join(bin, "in-zen"))
		lines = append(lines, line)
	}
	if len(lines) != 2 {
		t.Fatalf("expected two service lines from packaging/inetd/inetd.conf, got %q", lines)
	}
	conf := s.host.path("etc/inetd.conf")
	old, _ := os.ReadFile(conf)
	if err := os.WriteFile(conf, append(old, strings.Join(lines, "\n")+"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(s.host)
	}
	useradd := readmeCommand(t, "## inetd and xinetd", "useradd ")
	s.inetd = s.host.start(t, useradd+"\nexec "+inetd+" -d\n")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("inetd.conf lines:\n%s\ninetd output:\n%s", strings.Join(lines, "\n"), s.inetd.log())
		}
	})
	s.inetd.waitLog(t, `ADD\s*: 127\.0\.0\.1:`+strconv.Itoa(port2))
	return s
}

// trustedFile checks that only root or the test's user can change path
// and every folder that leads to it.
func trustedFile(path string) error {
	if _, err := trust.ResolveTrusted(filepath.Dir(path), 0); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	if !trust.Trusted(st.Uid) || st.Mode&0o022 != 0 {
		return fmt.Errorf("%w: owned by uid %d, mode %04o", trust.ErrUntrusted, st.Uid, st.Mode&0o7777)
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// heldChild holds a conversation open on addr and returns the pid of the
// child of parent, called prog, that serves it.
func heldChild(t *testing.T, parent int, prog, addr string) int {
	t.Helper()
	held := conversation(t, addr)
	held("Simple is better than?")
	var kids []int
	for _, pid := range childrenOf(parent) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == prog {
			kids = append(kids, pid)
		}
	}
	if len(kids) != 1 {
		t.Fatalf("%d %s children of %d while one conversation is open: %v", len(kids), prog, parent, kids)
	}
	return kids[0]
}

// TestUnderInetd follows the README's inetd install literally, on a
// private host (seen: in-zen1 reset the client, in-zen2 made inetd
// respawn it 259 times, and nothing was logged anywhere).
func TestUnderInetd(t *testing.T) {
	needSystem(t, "the README's inetd install with the shipped lines under the real openbsd-inetd")
	s := newInetdByHand(t, false, nil)
	h := s.host
	zendUID := h.uid(t, "zend")

	// Both modes answer the three questions, on the embedded defaults,
	// and say so to syslog under their own names.
	client(t, s.addr1)
	client(t, s.addr2)
	h.waitSyslog(t, 10*time.Second, `(?m)^<30>[A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d in-zen1\[\d+\]: accepted client=127\.0\.0\.1:\d+$`)
	h.waitSyslog(t, 10*time.Second, `(?m)^<30>.* in-zen2\[\d+\]: accepted client=127\.0\.0\.1:\d+$`)

	// in-zen1 runs as zend, with fds 1 and 2 off the client's socket.
	pid := heldChild(t, s.inetd.cmd.Process.Pid, "in-zen1", s.addr1)
	if uid := procStatus(t, pid, "Uid"); strings.Fields(uid)[0] != zendUID {
		t.Errorf("in-zen1 runs as uid %s, want zend's %s", uid, zendUID)
	}
	for _, fd := range []int{1, 2} {
		if target := fdTarget(pid, fd); strings.HasPrefix(target, "socket:") {
			t.Errorf("in-zen1's fd %d is %s, not moved off the client", fd, target)
		}
	}
	closeAll(t)

	// With /etc/zend.toml, the next in-zen1 reads it.
	writeFile(t, h.path("etc"), "zend.toml", "[answers]\n\"Readability counts?\" = \"Yes.\"\n")
	if a := askOnce(t, s.addr1, "Readability counts?"); a != "Yes." {
		t.Errorf("in-zen1 did not read /etc/zend.toml: %q", a)
	}

	// 50 concurrent clients through in-zen1 (inetd allows 256 a minute).
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); client(t, s.addr1) }()
	}
	wg.Wait()

	// in-zen2 serves several clients, exits after the shipped -timeout 8s,
	// and inetd starts a fresh one for the next client.
	for i := 0; i < 5; i++ {
		client(t, s.addr2)
	}
	first := h.waitSyslog(t, 60*time.Second, `in-zen2\[(\d+)\]: no new connection, exiting`)
	s.inetd.waitLog(t, first[1]+` reaped`)
	client(t, s.addr2)
	h.waitServers(t, "in-zen2", 2)
	// The shipped lines start cleanly: no error of inetd's own (seen
	// with proto tcp on 127.0.0.1: "Address family for hostname not
	// supported", at every start).
	if l := s.inetd.log(); strings.Contains(l, "not supported") || strings.Contains(h.records(), "not supported") {
		t.Errorf("inetd complained about the shipped lines:\n%s", l)
	}
}

// TestUnderTcpd: the shipped tcpd line, with hosts.deny refusing one
// client address and hosts.allow serving another; tcpd says so in syslog.
func TestUnderTcpd(t *testing.T) {
	needSystem(t, "tcpd's hosts.allow and hosts.deny in front of in-zen1")
	tool(t, "tcpd", "/usr/sbin/tcpd")
	s := newInetdByHand(t, true, func(h *privateHost) {
		writeFile(t, h.path("etc"), "hosts.allow", "in-zen1: 127.0.0.1\n")
		writeFile(t, h.path("etc"), "hosts.deny", "in-zen1: ALL\n")
	})
	client(t, s.addr1) // 127.0.0.1 is allowed
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.addr1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "Beautiful is better than?")
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("127.0.0.2, denied by hosts.deny, got %q", b)
	}
	s.host.waitSyslog(t, 10*time.Second, `refused connect from 127\.0\.0\.2`)
	if strings.Contains(s.host.records(), "client=127.0.0.2") {
		t.Fatal("a denied client reached in-zen1")
	}
}

// TestUnderXinetd follows the README's xinetd install literally, on a
// private host with xinetd's own /etc/xinetd.conf: the shipped service
// files copied to /etc/xinetd.d with only the port and the binary's
// folder changed.
func TestUnderXinetd(t *testing.T) {
	needSystem(t, "the shipped xinetd service files under the real xinetd")
	xinetd := tool(t, "xinetd", os.Getenv("XINETD"), "/var/tmp/zend-ci/xinetd/root/usr/sbin/xinetd", "/usr/sbin/xinetd")
	h := newPrivateHost(t)
	// xinetd's own configuration, as its package installs it (the
	// unpacked package's, next to its binary, or the machine's).
	pkgEtc := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(xinetd))), "etc")
	if out, err := exec.Command("cp", "-a", filepath.Join(pkgEtc, "xinetd.conf"), filepath.Join(pkgEtc, "xinetd.d"), h.path("etc")).CombinedOutput(); err != nil {
		t.Fatalf("xinetd's /etc: %v %s", err, out)
	}
	ports := map[string]int{"in-zen1": freePort(t), "in-zen2": freePort(t)}
	for _, name := range []string{"in-zen1", "in-zen2"} {
		b, err := os.ReadFile("../../packaging/xinetd/" + name)
		if err != nil {
			t.Fatal(err)
		}
		text := regexp.MustCompile(`(?m)^(\s*port\s*=).*$`).ReplaceAllString(string(b), "${1} "+strconv.Itoa(ports[name]))
		text = strings.ReplaceAll(text, "/usr/sbin/"+name, filepath.Join(bin, name))
		writeFile(t, h.path("etc/xinetd.d"), name, text)
	}
	useradd := readmeCommand(t, "## inetd and xinetd", "useradd ")
	p := h.start(t, useradd+"\nexec "+xinetd+" -dontfork\n")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("xinetd output:\n%s", p.log())
		}
	})
	addr1 := fmt.Sprintf("127.0.0.1:%d", ports["in-zen1"])
	addr2 := fmt.Sprintf("127.0.0.1:%d", ports["in-zen2"])
	waitDial(t, addr1)
	waitDial(t, addr2)
	client(t, addr1)
	h.waitSyslog(t, 10*time.Second, `in-zen1\[\d+\]: accepted client=127\.0\.0\.1:\d+`)
	pid := heldChild(t, p.cmd.Process.Pid, "in-zen1", addr1)
	if uid, want := strings.Fields(procStatus(t, pid, "Uid"))[0], h.uid(t, "zend"); uid != want {
		t.Errorf("in-zen1 runs as uid %s, want zend's %s", uid, want)
	}
	closeAll(t)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); client(t, addr2) }()
	}
	wg.Wait()
	first := h.waitSyslog(t, 60*time.Second, `in-zen2\[(\d+)\]: no new connection, exiting`)
	waitUntil(t, 10*time.Second, "in-zen2 "+first[1]+" gone", func() (bool, string) {
		return procStat(mustAtoi(t, first[1])) == nil || procStat(mustAtoi(t, first[1]))[0] == "Z", ""
	})
	client(t, addr2) // xinetd starts a new one
	h.waitServers(t, "in-zen2", 2)
	// No tcpd check on a wait service (seen: "can't get client address"
	// at every in-zen2 start).
	if r := h.records(); strings.Contains(r, "can't get client address") {
		t.Errorf("xinetd warns at in-zen2's start:\n%s", r)
	}
}

// waitServers waits up to 10 s for records of clients accepted by n
// processes of prog.
func (h *privateHost) waitServers(t *testing.T, prog string, n int) {
	t.Helper()
	rx := regexp.MustCompile(regexp.QuoteMeta(prog) + `\[(\d+)\]: accepted`)
	waitUntil(t, 10*time.Second, fmt.Sprintf("clients accepted by %d %s processes", n, prog), func() (bool, string) {
		pids := map[string]bool{}
		for _, m := range rx.FindAllStringSubmatch(h.records(), -1) {
			pids[m[1]] = true
		}
		return len(pids) >= n, fmt.Sprint(pids)
	})
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

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
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
