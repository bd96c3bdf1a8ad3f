package main_test

// syslog and journal log targets, end to end: the test owns a datagram
// socket standing in for /dev/log (ZEND_SYSLOG_SOCKET, a variable only
// tests use) or for /run/systemd/journal/socket (binaries built with
// go-systemd's journalSocket pointed at it), and decodes what arrives.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sockDir is a short folder for sockets (sun_path holds 108 bytes).
func sockDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "zl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// dgramServer is a datagram socket the test owns; what arrives is queued
// on recv.
type dgramServer struct {
	path string
	recv chan string
}

func listenDgram(t *testing.T, path string) *dgramServer {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	s := &dgramServer{path: path, recv: make(chan string, 1000)}
	go func() {
		b := make([]byte, 256<<10)
		for {
			n, err := c.Read(b)
			if err != nil {
				close(s.recv)
				return
			}
			s.recv <- string(b[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

// want waits up to 10 s for a datagram matching re, and returns its
// submatches.
func (s *dgramServer) want(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var seen []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case d, ok := <-s.recv:
			if !ok {
				t.Fatalf("socket closed before %q; got:\n%s", re, strings.Join(seen, "\n"))
			}
			if m := rx.FindStringSubmatch(d); m != nil {
				return m
			}
			seen = append(seen, d)
		case <-timeout:
			t.Fatalf("no datagram %q within 10 s; got:\n%s", re, strings.Join(seen, "\n"))
		}
	}
}

// rfc5424 matches the start of a record: <PRI>1 TIMESTAMP HOSTNAME, with
// the timestamp in UTC to the microsecond; APP PROCID - - MSG follow.
const rfc5424 = `^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [!-~]+ `

// rfc3164 matches the start of a record as syslog(3) writes it to
// /dev/log: <PRI> and the local time to the second; APP[PID]: MSG follow.
const rfc3164 = `^<(\d+)>[A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d `

// TestRunLogsToSyslog: zend run with log.file = "syslog" and a facility
// sends records with PRI = facility*8 + severity and its pid, in either
// form, and reconnects on SIGUSR1.
func TestRunLogsToSyslog(t *testing.T) {
	for _, tt := range []struct {
		form string
		// head is a record's start up to its MSG, for pid PID.
		head string
	}{
		// The default: syslog(3)'s form.
		{"", rfc3164 + `zend\[PID\]: `},
		// RFC 5424, chosen.
		{"rfc5424", rfc5424 + `zend PID - - `},
	} {
		t.Run("form="+tt.form, func(t *testing.T) {
			srv := listenDgram(t, filepath.Join(sockDir(t), "log"))
			addr := freeAddr(t)
			env := []string{"ZEND_SYSLOG_SOCKET=" + srv.path, "ZEND_LOG_FILE=syslog", "ZEND_LOG_FACILITY=local1"}
			if tt.form != "" {
				env = append(env, "ZEND_LOG_SYSLOG_FORMAT="+tt.form)
			}
			p := start(t, "zend", env, "-listen", addr, "run")
			head := strings.ReplaceAll(tt.head, "PID", fmt.Sprint(p.cmd.Process.Pid))
			// local1 (17) * 8 + info (6) = 142.
			// ("zend ready" may come before or after "listening".)
			if m := srv.want(t, head+`listening addr=`); m[1] != "142" {
				t.Fatalf("PRI %s, want 142", m[1])
			}
			client(t, addr)
			srv.want(t, head+`accepted client=127\.0\.0\.1:\d+$`)
			// A question cut off by the client is a warning: 17*8+4 = 140.
			host, port, _ := net.SplitHostPort(addr)
			runBin(t, "zen-client", nil, "-e", "-p", port, host)
			if m := srv.want(t, head+`incomplete question then closed client=127\.0\.0\.1:\d+ bytes=`); m[1] != "140" {
				t.Fatalf("PRI %s, want 140", m[1])
			}
			p.cmd.Process.Signal(syscall.SIGUSR1)
			srv.want(t, head+`log file reopened file=syslog$`)
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t, 15*time.Second); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, p.log())
			}
			srv.want(t, head+`stopped finished=`)
			if strings.Contains(p.log(), "listening") {
				t.Errorf("records went to stderr too:\n%s", p.log())
			}
		})
	}
}

// TestUnderRsyslog sends zend's and in-zen1's records to the real rsyslog
// and reads back what it made of them: the program name, pid, facility,
// severity and message in rsyslog's own fields. One socket is imuxsock's
// system socket as Debian ships it (the parser for syslog(3)'s form), the
// other a socket with the regular parser chain, for rfc5424. (Seen: RFC
// 5424 records on the shipped socket became program "1", pid "-", with
// the whole header in the message.)
func TestUnderRsyslog(t *testing.T) {
	needSystem(t, "zend's syslog records parsed by the real rsyslog")
	rsyslogd := tool(t, "rsyslogd", "/usr/sbin/rsyslogd")
	dir := sockDir(t)
	// Each socket's records go to their own file. rsyslog keeps the
	// space after "zend[PID]:" in a syslog(3) record's msg: ' ?'.
	conf := writeFile(t, dir, "rsyslog.conf", fmt.Sprintf(`module(load="imuxsock" SysSock.Name="%[1]s/log")
template(name="fields" type="string" string="app=%%app-name%% pid=%%procid%% fac=%%syslogfacility-text%% sev=%%syslogseverity-text%% msg=[%%msg%%]\n")
ruleset(name="rfc5424") { action(type="omfile" file="%[1]s/out5424" template="fields") }
input(type="imuxsock" Socket="%[1]s/log5424" UseSpecialParser="off" Ruleset="rfc5424")
action(type="omfile" file="%[1]s/out" template="fields")
`, dir))
	rs := start(t, rsyslogd, nil, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "out"))
			b5424, _ := os.ReadFile(filepath.Join(dir, "out5424"))
			t.Logf("rsyslogd:\n%s\nwhat it wrote:\n%s\nfrom the rfc5424 socket:\n%s", rs.log(), b, b5424)
		}
	})
	for _, s := range []string{"log", "log5424"} {
		waitUntil(t, 10*time.Second, "rsyslogd's socket "+s, func() (bool, string) {
			_, err := os.Stat(filepath.Join(dir, s))
			return err == nil, fmt.Sprint(err)
		})
	}

	for _, tt := range []struct {
		form, sock, out, facility string
	}{
		// The default form on the socket as Debian ships it.
		{"rfc3164", "log", "out", "daemon"},
		// RFC 5424 where rsyslog is set up to parse it.
		{"rfc5424", "log5424", "out5424", "local3"},
	} {
		addr := freeAddr(t)
		p := start(t, "zend", []string{"ZEND_SYSLOG_SOCKET=" + filepath.Join(dir, tt.sock), "ZEND_LOG_FILE=syslog",
			"ZEND_LOG_SYSLOG_FORMAT=" + tt.form, "ZEND_LOG_FACILITY=" + tt.facility}, "-listen", addr, "run")
		waitDial(t, addr)
		client(t, addr)
		host, port, _ := net.SplitHostPort(addr)
		runBin(t, "zen-client", nil, "-e", "-p", port, host)
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("zend exit %d:\n%s", code, p.log())
		}
		pid := p.cmd.Process.Pid
		head := fmt.Sprintf(`(?m)^app=zend pid=%d fac=%s `, pid, tt.facility)
		out := filepath.Join(dir, tt.out)
		waitFileMatch(t, out, head+`sev=info msg=\[ ?accepted client=127\.0\.0\.1:\d+\]$`)
		waitFileMatch(t, out, head+`sev=warning msg=\[ ?incomplete question then closed client=`)
		waitFileMatch(t, out, head+`sev=info msg=\[ ?stopped finished=`)
	}

	// in-zen1 logs to syslog by default, under its own name.
	client, server := socketPair(t)
	cmd := startInetd(t, filepath.Join(bin, "in-zen1"), server, []string{"ZEND_SYSLOG_SOCKET=" + filepath.Join(dir, "log")})
	server.Close()
	if a := ask(t, bufio.NewReader(client), client, "Beautiful is better than?"); a != "Ugly." {
		t.Fatalf("in-zen1 answered %q", a)
	}
	client.(*net.TCPConn).CloseWrite()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("in-zen1: %v", err)
	}
	waitFileMatch(t, filepath.Join(dir, "out"), fmt.Sprintf(`(?m)^app=in-zen1 pid=%d fac=daemon sev=info msg=\[ ?accepted client=127\.0\.0\.1:\d+\]$`, cmd.Process.Pid))
}

// TestRunSyslogMissing: zend run with log.file = "syslog" and no syslog
// socket does not start, and says why on stderr.
func TestRunSyslogMissing(t *testing.T) {
	missing := filepath.Join(sockDir(t), "none")
	_, errout, code := runBin(t, "zend", []string{"ZEND_SYSLOG_SOCKET=" + missing, "ZEND_LOG_FILE=syslog"}, "-listen", "127.0.0.1:0", "run")
	if code != 1 || !strings.Contains(errout, "syslog socket") || !strings.Contains(errout, missing) {
		t.Fatalf("exit %d, stderr:\n%s", code, errout)
	}
}

// startInetd starts an in-zen binary with f on fds 0, 1 and 2 (as inetd
// does) and env added.
func startInetd(t testing.TB, path string, f *os.File, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// unwritable is a log path that cannot be opened, even by root: its
// folder is a regular file.
func unwritable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "file", "")
	return filepath.Join(dir, "file", "in-zen.log")
}

// ask asks one question on c and returns the answer.
func ask(t *testing.T, r *bufio.Reader, c net.Conn, q string) string {
	t.Helper()
	io.WriteString(c, q)
	a, err := r.ReadString('.')
	if err != nil {
		t.Fatalf("%q: %v", q, err)
	}
	return a
}

// TestInZen1SyslogRecords checks the records themselves, in order.
func TestInZen1SyslogRecords(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  []string
		// first is the first record's MSG; "" when it is "accepted".
		first string
	}{
		// An unwritable -log: the failure is the first record, at error.
		{"unwritable log", []string{"-log", "BAD"}, nil, rfc3164 + `in-zen1\[PID\]: cannot open the log file, logging to syslog instead file=BAD err=`},
		// No -log: syslog is the default, facility from log.facility.
		{"default", nil, []string{"ZEND_LOG_FACILITY=local7"}, ""},
		// -log syslog.
		{"named", []string{"-log", "syslog"}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := listenDgram(t, filepath.Join(sockDir(t), "log"))
			bad := unwritable(t)
			args := append([]string(nil), tt.args...)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "BAD", bad)
			}
			client, server := socketPair(t)
			cmd := startInetd(t, filepath.Join(bin, "in-zen1"), server, append([]string{"ZEND_SYSLOG_SOCKET=" + srv.path}, tt.env...), args...)
			server.Close()
			pid := fmt.Sprint(cmd.Process.Pid)
			if tt.first != "" {
				srv.want(t, strings.NewReplacer("PID", pid, "BAD", regexp.QuoteMeta(bad)).Replace(tt.first))
			}
			pri := "30" // daemon (3) * 8 + info (6)
			if len(tt.env) > 0 {
				pri = "190" // local7 (23) * 8 + 6
			}
			head := `^<` + pri + `>[A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d in-zen1\[` + pid + `\]: `
			srv.want(t, head+`accepted client=127\.0\.0\.1:\d+$`)
			r := bufio.NewReader(client)
			if a := ask(t, r, client, "Beautiful is better than?"); a != "Ugly." {
				t.Fatalf("answer %q", a)
			}
			client.(*net.TCPConn).CloseWrite()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("in-zen1: %v", err)
			}
			srv.want(t, head+`closed`)
		})
	}
}

// TestInZen1NoLogAnywhere: no log file, no syslog, and stderr is the
// client's socket: in-zen1 exits 1 without a byte to the client.
func TestInZen1NoLogAnywhere(t *testing.T) {
	client, server := socketPair(t)
	cmd := startInetd(t, filepath.Join(bin, "in-zen1"), server, []string{"ZEND_SYSLOG_SOCKET=" + filepath.Join(sockDir(t), "none")}, "-log", unwritable(t))
	server.Close()
	got, _ := io.ReadAll(client)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1", err)
	}
	if len(got) > 0 {
		t.Fatalf("the client received %q", got)
	}
}

// TestInZen1StderrLastResort: no log file and no syslog, but stderr is
// not a socket (run by hand): the reasons go to stderr.
func TestInZen1StderrLastResort(t *testing.T) {
	bad := unwritable(t)
	_, errout, code := runBin(t, "in-zen1", []string{"ZEND_SYSLOG_SOCKET=" + filepath.Join(sockDir(t), "none")}, "-log", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (no client on fd 0)", code)
	}
	for _, want := range []string{`msg="cannot open the log file, logging to syslog instead" prog=in-zen1 pid=`, " file=" + bad, `msg="cannot log to syslog, logging to stderr"`, `msg="no client"`} {
		if !strings.Contains(errout, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errout)
		}
	}
}

// journalBins builds zend and in-zen1 with go-systemd's journal socket
// pointed at a socket the test owns (the package's documented build-time
// override), and returns their folder and that socket.
func journalBins(t *testing.T) (dir, sock string) {
	t.Helper()
	dir = sockDir(t)
	sock = filepath.Join(dir, "journal")
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"-ldflags=-X github.com/coreos/go-systemd/v22/journal.journalSocket="+sock, "zend/cmd/zend", "zend/cmd/in-zen1")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return dir, sock
}

// decodeJournal decodes one datagram of the journal's native protocol:
// KEY=value lines, or KEY, a newline, a 64-bit little-endian length, the
// value and a newline for values that hold a newline.
func decodeJournal(t *testing.T, d string) map[string]string {
	t.Helper()
	fields := map[string]string{}
	b := []byte(d)
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			t.Fatalf("unterminated field in %q", d)
		}
		line := b[:nl]
		b = b[nl+1:]
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			fields[string(k)] = string(v)
			continue
		}
		if len(b) < 8 {
			t.Fatalf("binary field %q without a length in %q", line, d)
		}
		n := binary.LittleEndian.Uint64(b[:8])
		b = b[8:]
		if uint64(len(b)) < n+1 || b[n] != '\n' {
			t.Fatalf("binary field %q of %d bytes is cut in %q", line, n, d)
		}
		fields[string(line)] = string(b[:n])
		b = b[n+1:]
	}
	return fields
}

// TestJournalTarget: zend run and in-zen1 with log.file = "journal" send
// native entries with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and the
// attributes as upper-case fields.
func TestJournalTarget(t *testing.T) {
	dir, sock := journalBins(t)
	srv := listenDgram(t, sock)
	next := func(msg string) map[string]string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case d := <-srv.recv:
				f := decodeJournal(t, d)
				if strings.HasPrefix(f["MESSAGE"], msg) {
					return f
				}
			case <-timeout:
				t.Fatalf("no journal entry %q within 10 s", msg)
			}
		}
	}

	addr := freeAddr(t)
	p := start(t, filepath.Join(dir, "zend"), []string{"ZEND_LOG_FILE=journal"}, "-listen", addr, "run")
	f := next("listening")
	if f["PRIORITY"] != "6" || f["SYSLOG_IDENTIFIER"] != "zend" || f["SYSLOG_FACILITY"] != "3" || f["ADDR"] != addr || f["ENGINE"] != "uring" {
		t.Fatalf("listening entry: %v", f)
	}
	client(t, addr)
	f = next("accepted")
	if !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(f["CLIENT"]) || f["MESSAGE"] != "accepted client="+f["CLIENT"] {
		t.Fatalf("accepted entry: %v", f)
	}
	// A client that hangs up mid-question: a warning.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "Simple is")
	c.Close()
	if f = next("incomplete question then closed"); f["PRIORITY"] != "4" || f["BYTES"] == "" {
		t.Fatalf("incomplete entry: %v", f)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.log())
	}

	// in-zen1 -log journal, under its own name.
	client, server := socketPair(t)
	cmd := startInetd(t, filepath.Join(dir, "in-zen1"), server, nil, "-log", "journal")
	server.Close()
	f = next("accepted")
	if f["SYSLOG_IDENTIFIER"] != "in-zen1" || f["CLIENT"] == "" || f["PRIORITY"] != "6" {
		t.Fatalf("in-zen1 entry: %v", f)
	}
	client.Close()
	cmd.Wait()

	// A value with newlines (two configuration errors, joined) travels
	// binary-safe: KEY, newline, length, value.
	cfg := writeFile(t, t.TempDir(), "zend.toml", "[server]\nengine = \"x\"\nworkers = -1\n")
	if _, _, code := runCmd(t, exec.Command(filepath.Join(dir, "in-zen1"), "-c", cfg, "-log", "journal")); code != 1 {
		t.Fatalf("in-zen1 with a bad configuration: exit %d, want 1", code)
	}
	f = next("cannot load the configuration")
	if f["PRIORITY"] != "3" || strings.Count(f["ERR"], "\n") != 1 || !strings.Contains(f["ERR"], "server.workers") || strings.Contains(f["MESSAGE"], "\n") {
		t.Fatalf("bad configuration entry: %q", f)
	}
}
