package main_test

// Tests of "zend start|stop|restart|reload|status": the daemon is checked
// from outside, through /proc, as an administrator would.

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

	"golang.org/x/sys/unix"
)

// daemonEnv is a folder with a config for a daemon on a free loopback port.
type daemonEnv struct {
	dir, cfg, addr, pidfile, log string
}

// newDaemonEnv writes a config with extra appended to its [server],
// [daemon] or other tables (extra is TOML placed after the generated ones).
func newDaemonEnv(t *testing.T, extra string) *daemonEnv {
	t.Helper()
	d := &daemonEnv{dir: t.TempDir(), addr: freeAddr(t)}
	d.pidfile = filepath.Join(d.dir, "run", "zend.pid")
	d.log = filepath.Join(d.dir, "log", "zend.log")
	d.cfg = filepath.Join(d.dir, "zend.toml")
	d.write(t, extra)
	t.Cleanup(func() { d.kill(t) })
	return d
}

// write rewrites the config with other extra settings.
func (d *daemonEnv) write(t *testing.T, extra string) {
	t.Helper()
	text := fmt.Sprintf("[server]\nlisten = [%q]\n[daemon]\npidfile = \"run/zend.pid\"\n[log]\nfile = \"log/zend.log\"\n%s", d.addr, extra)
	text = mergeTables(text)
	if err := os.WriteFile(d.cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mergeTables merges repeated [table] headers, so that extra can add keys
// to the generated tables or replace theirs.
func mergeTables(text string) string {
	order := []string{""}
	body := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			cur = line
			if _, ok := body[cur]; !ok {
				order = append(order, cur)
				body[cur] = nil
			}
			continue
		}
		key, _, _ := strings.Cut(line, "=")
		replaced := false
		for i, l := range body[cur] {
			if k, _, _ := strings.Cut(l, "="); strings.TrimSpace(k) == strings.TrimSpace(key) {
				body[cur][i], replaced = line, true
			}
		}
		if !replaced {
			body[cur] = append(body[cur], line)
		}
	}
	var b strings.Builder
	for _, h := range order {
		if h != "" {
			b.WriteString(h + "\n")
		}
		for _, l := range body[h] {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// zend runs "zend -c CFG args..." to its end.
func (d *daemonEnv) zend(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBin(t, "zend", env, append([]string{"-c", d.cfg}, args...)...)
}

// start runs "zend start", which must succeed, and returns the daemon's pid.
func (d *daemonEnv) start(t *testing.T, env ...string) int {
	t.Helper()
	out, errout, code := d.zend(t, env, "start")
	if code != 0 {
		t.Fatalf("zend start: exit %d\nstdout: %s\nstderr: %s\nlog: %s", code, out, errout, d.readLog())
	}
	return d.pid(t)
}

// pid reads the pidfile.
func (d *daemonEnv) pid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(d.pidfile)
	if err != nil {
		t.Fatalf("pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pidfile content %q", b)
	}
	return pid
}

func (d *daemonEnv) readLog() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// waitLog waits up to 10 s for the log file to match re.
func (d *daemonEnv) waitLog(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if m := rx.FindStringSubmatch(d.readLog()); m != nil {
			return m
		}
	}
	t.Fatalf("log lacks %q within 10 s:\n%s", re, d.readLog())
	return nil
}

// kill ends every process still running with this config: the test's
// cleanup, so that no daemon outlives its test.
func (d *daemonEnv) kill(t *testing.T) {
	for _, pid := range processesWith(d.cfg) {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && len(processesWith(d.cfg)) > 0; {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range processesWith(d.cfg) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesWith lists the live processes whose command line contains s.
func processesWith(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(s)) {
			continue
		}
		if st := procStat(pid); st != nil && st[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat returns the fields of /proc/PID/stat after the command name:
// state, ppid, pgrp, session, tty_nr, ...
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// procStatus returns a field of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

// ask opens a connection to addr, asks q and returns the answer.
func askOnce(t *testing.T, addr, q string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, q)
	a, err := bufio.NewReader(c).ReadString('.')
	if err != nil {
		t.Fatalf("ask %q: %v", q, err)
	}
	return a
}

// TestDaemonSteps checks each of daemon(7)'s SysV steps on a daemon started
// from a terminal, by a caller that leaves a file open, ignores SIGHUP,
// blocks SIGHUP and SIGUSR1 and has an unrelated environment variable.
func TestDaemonSteps(t *testing.T) {
	d := newDaemonEnv(t, "[daemon]\numask = \"0027\"\n")
	_, slave := openPty(t)
	leak, err := os.Create(filepath.Join(d.dir, "leaked-fd"))
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()

	// The starter: a shell on a terminal (its controlling tty) that
	// ignores SIGHUP and blocks SIGHUP and SIGUSR1 before exec'ing zend.
	helper := exec.Command(filepath.Join(bin, "zend"), "-c", d.cfg, "start")
	helper.Env = append(cleanEnv(), "UNRELATED_SECRET=1", "ZEND_LOG_LEVEL=debug", "_GO_DAEMON=1")
	helper.Stdin, helper.Stdout, helper.Stderr = slave, slave, slave
	helper.ExtraFiles = []*os.File{leak}
	helper.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	blockAndIgnore(t, func() {
		if err := helper.Start(); err != nil {
			t.Fatal(err)
		}
	})
	starter := helper.Process.Pid
	if err := helper.Wait(); err != nil {
		t.Fatalf("zend start: %v; log:\n%s", err, d.readLog())
	}
	pid := d.pid(t)
	st := procStat(pid)

	// 14-15: the starter exited only when the daemon was serving: the
	// port answers at once, without retrying.
	if a := askOnce(t, d.addr, "Beautiful is better than?"); a != "Ugly." {
		t.Errorf("right after start: %q", a)
	}
	// 5, 8: the daemon is a child of neither the starter nor the first
	// child, which exited.
	ppid, _ := strconv.Atoi(st[1])
	if ppid == starter {
		t.Errorf("daemon's parent is the starter %d", starter)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid)); strings.TrimSpace(string(comm)) == "zend" {
		t.Errorf("daemon's parent %d is still a zend process", ppid)
	}
	// 6, 7: in its own session, but not its leader.
	sid, _ := strconv.Atoi(st[3])
	if sid == pid {
		t.Errorf("daemon is a session leader (sid %d)", sid)
	}
	if starterSid := starter; sid == starterSid {
		t.Errorf("daemon is in the starter's session")
	}
	// No controlling terminal although the starter had one.
	if st[4] != "0" {
		t.Errorf("daemon has a controlling terminal (tty_nr %s)", st[4])
	}
	// 11: cwd /.
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("cwd %q, want /", cwd)
	}
	// 10: umask as configured.
	if um := procStatus(t, pid, "Umask"); um != "0027" {
		t.Errorf("umask %s, want 0027", um)
	}
	// 9: stdin /dev/null, stdout and stderr the log file.
	fd := func(n int) string { s, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, n)); return s }
	if fd(0) != "/dev/null" || fd(1) != d.log || fd(2) != d.log {
		t.Errorf("fds 0, 1, 2 = %q, %q, %q; want /dev/null and the log file %s", fd(0), fd(1), fd(2), d.log)
	}
	// 1: the file the starter left open did not reach the daemon.
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); target == leak.Name() || strings.HasPrefix(target, "/dev/pts") || strings.Contains(target, "pipe:") {
			t.Errorf("inherited fd %s -> %s is open in the daemon", e.Name(), target)
		}
	}
	// 2: no signal ignored; 3: neither SIGHUP nor SIGUSR1 blocked in any
	// thread.
	if ign := procStatus(t, pid, "SigIgn"); strings.Trim(ign, "0") != "" {
		t.Errorf("daemon ignores signals: SigIgn %s", ign)
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		m := regexp.MustCompile(`SigBlk:\s*([0-9a-f]+)`).FindSubmatch(b)
		if m == nil {
			continue
		}
		mask, _ := strconv.ParseUint(string(m[1]), 16, 64)
		if mask&(1<<(syscall.SIGHUP-1)|1<<(syscall.SIGUSR1-1)) != 0 {
			t.Errorf("thread %s blocks SIGHUP or SIGUSR1: %s", task.Name(), m[1])
		}
	}
	// 4: the environment is sanitised: ZEND_* kept, the rest gone.
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if bytes.Contains(env, []byte("UNRELATED_SECRET")) || !bytes.Contains(env, []byte("ZEND_LOG_LEVEL=debug")) || bytes.Contains(env, []byte("_GO_DAEMON")) {
		t.Errorf("environment not sanitised: %q", bytes.ReplaceAll(env, []byte{0}, []byte{' '}))
	}
	// 12: the pidfile holds the pid; the daemon holds its lock file.
	if d.pid(t) != pid {
		t.Errorf("pidfile names %d, daemon is %d", d.pid(t), pid)
	}
	f, err := os.Open(strings.TrimSuffix(d.pidfile, ".pid") + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		t.Error("the lock is not held")
	}
	f.Close()
	// The signals work: SIGUSR1 reopens, SIGHUP reloads.
	syscall.Kill(pid, syscall.SIGUSR1)
	d.waitLog(t, `msg="log file reopened"`)
	syscall.Kill(pid, syscall.SIGHUP)
	d.waitLog(t, `msg="configuration reloaded"`)
	d.waitLog(t, `level=DEBUG|msg=accepted`)

	// stop: exit 0, the process gone, the pidfile and socket removed.
	if _, errout, code := d.zend(t, nil, "stop"); code != 0 {
		t.Fatalf("stop: exit %d %s", code, errout)
	}
	if procStat(pid) != nil && procStat(pid)[0] != "Z" {
		t.Error("daemon still running after stop returned")
	}
	if _, err := os.Stat(d.pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile left after stop: %v", err)
	}
	d.waitLog(t, `msg=stopped finished=\d+ cut_off=0`)
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		setup func(t *testing.T, d *daemonEnv)
		want  string
	}{
		// The address is taken.
		{"address in use", "", func(t *testing.T, d *daemonEnv) {
			ln, err := net.Listen("tcp", d.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, "bind: address already in use"},
		// The pidfile's folder cannot be made (a file is in the way).
		{"pidfile folder", "[daemon]\npidfile = \"blocker/zend.pid\"\n", func(t *testing.T, d *daemonEnv) {
			os.WriteFile(filepath.Join(d.dir, "blocker"), nil, 0o644)
		}, "blocker/zend.pid: not a directory"},
		// The log folder cannot be made.
		{"log folder", "[log]\nfile = \"blocker/zend.log\"\n", func(t *testing.T, d *daemonEnv) {
			os.WriteFile(filepath.Join(d.dir, "blocker"), nil, 0o644)
		}, "blocker: not a folder"},
		// An unknown user.
		{"unknown user", "[daemon]\nuser = \"no-such-user-zend\"\n", nil, `daemon.user "no-such-user-zend": no such user`},
		// A bad configuration.
		{"bad config", "[limits]\nmax_connections = -1\n", nil, "limits.max_connections: -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDaemonEnv(t, tt.extra)
			if tt.setup != nil {
				tt.setup(t, d)
			}
			_, errout, code := d.zend(t, nil, "start")
			if code != 1 || !strings.Contains(errout, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errout, tt.want)
			}
			// Nothing left behind: no process (one may still be exiting),
			// no pidfile.
			waitUntil(t, 10*time.Second, "no process left behind", func() (bool, string) {
				pids := processesWith(d.cfg)
				return len(pids) == 0, fmt.Sprintf("processes %v", pids)
			})
			if _, err := os.Stat(d.pidfile); !os.IsNotExist(err) {
				t.Errorf("pidfile left behind")
			}
		})
	}
}

func TestStartTwiceAndStalePidfile(t *testing.T) {
	d := newDaemonEnv(t, "")
	pid := d.start(t)
	// A second start refuses, naming the running pid.
	_, errout, code := d.zend(t, nil, "start")
	if code != 1 || !strings.Contains(errout, fmt.Sprintf("already running (pid %d", pid)) {
		t.Fatalf("second start: exit %d, %q", code, errout)
	}
	// status: 0 and the details.
	out, _, code := d.zend(t, nil, "status")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("zend is running (pid %d)", pid)) || !strings.Contains(out, d.addr) || !strings.Contains(out, "connections: ") {
		t.Fatalf("status running: exit %d\n%s", code, out)
	}
	// kill -9 leaves a stale pidfile: status 1, then start takes it over.
	syscall.Kill(pid, syscall.SIGKILL)
	waitUntil(t, 10*time.Second, "the killed daemon gone", func() (bool, string) {
		pids := processesWith(d.cfg)
		return len(pids) == 0, fmt.Sprintf("processes %v", pids)
	})
	out, _, code = d.zend(t, nil, "status")
	if code != 1 || !strings.Contains(out, "dead") {
		t.Fatalf("status after kill -9: exit %d %q, want 1", code, out)
	}
	pid2 := d.start(t)
	if pid2 == pid {
		t.Fatal("same pid")
	}
	if a := askOnce(t, d.addr, "Simple is better than?"); a != "Complex." {
		t.Fatalf("answer %q", a)
	}
	if _, _, code := d.zend(t, nil, "stop"); code != 0 {
		t.Fatal("stop")
	}
	// Not running: status 3, stop 0 with "not running".
	if _, _, code := d.zend(t, nil, "status"); code != 3 {
		t.Fatalf("status stopped: exit %d, want 3", code)
	}
	if _, errout, code := d.zend(t, nil, "stop"); code != 0 || !strings.Contains(errout, "not running") {
		t.Fatalf("stop when stopped: exit %d %q", code, errout)
	}
	// restart from stopped starts; restart when running replaces it.
	if _, errout, code := d.zend(t, nil, "restart"); code != 0 {
		t.Fatalf("restart: %d %s", code, errout)
	}
	p1 := d.pid(t)
	if _, errout, code := d.zend(t, nil, "restart"); code != 0 {
		t.Fatalf("restart: %d %s", code, errout)
	}
	if p2 := d.pid(t); p2 == p1 {
		t.Fatal("restart kept the pid")
	}
	askOnce(t, d.addr, "Simple is better than?")
}

// daemonEngines are the engines the daemon tests run on: those meant for
// deployment.
var daemonEngines = []string{"goroutine", "eventloop", "uring"}

func TestDaemonReload(t *testing.T) {
	for _, e := range daemonEngines {
		t.Run(e, func(t *testing.T) { testDaemonReload(t, e) })
	}
}

func testDaemonReload(t *testing.T, engine string) {
	d := newDaemonEnv(t, "[server]\nengine = \""+engine+"\"\n[answers]\n\"Readability counts?\" = \"Yes.\"\n")
	d.start(t)
	askOn := conversation(t, d.addr)
	if a := askOn("Readability counts?"); a != "Yes." {
		t.Fatalf("%q", a)
	}
	// A changed answer, and a new address; the connection stays open.
	second := freeAddr(t)
	text := fmt.Sprintf("[server]\nengine = %q\nlisten = [%q, %q]\n[daemon]\npidfile = \"run/zend.pid\"\n[log]\nfile = \"log/zend.log\"\n[answers]\n\"Readability counts?\" = \"Very much.\"\n", engine, d.addr, second)
	os.WriteFile(d.cfg, []byte(text), 0o644)
	out, errout, code := d.zend(t, nil, "reload")
	if code != 0 || !strings.Contains(out, "reloaded") {
		t.Fatalf("reload: exit %d %s %s", code, out, errout)
	}
	if a := askOn("Readability counts?"); a != "Very much." {
		t.Fatalf("after reload, same connection: %q", a)
	}
	if a := askOnce(t, second, "Readability counts?"); a != "Very much." {
		t.Fatalf("new address: %q", a)
	}
	// A broken file: reload exits 1 without signalling; answers unchanged.
	os.WriteFile(d.cfg, []byte(text+"[limits]\nmax_connections = 0\n"), 0o644)
	_, errout, code = d.zend(t, nil, "reload")
	if code != 1 || !strings.Contains(errout, "zend.toml:11: limits.max_connections: 0: allowed is 1 or more") || !strings.Contains(errout, "not signalled") {
		t.Fatalf("broken reload: exit %d %q", code, errout)
	}
	if a := askOn("Readability counts?"); a != "Very much." {
		t.Fatalf("after broken reload: %q", a)
	}
	// The daemon's own verdict: a new address it cannot bind.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	text2 := strings.Replace(text, fmt.Sprintf("%q]", second), fmt.Sprintf("%q, %q]", second, ln.Addr().String()), 1)
	os.WriteFile(d.cfg, []byte(text2), 0o644)
	_, errout, code = d.zend(t, nil, "reload")
	if code != 1 || !strings.Contains(errout, "refused") || !strings.Contains(errout, "address already in use") {
		t.Fatalf("reload refused by the daemon: exit %d %q", code, errout)
	}
	if a := askOn("Readability counts?"); a != "Very much." {
		t.Fatalf("after refused reload: %q", a)
	}
	// Removing an address closes its listener.
	os.WriteFile(d.cfg, []byte(strings.Replace(text, fmt.Sprintf(", %q", second), "", 1)), 0o644)
	if _, errout, code := d.zend(t, nil, "reload"); code != 0 {
		t.Fatalf("reload: %d %s", code, errout)
	}
	if c, err := net.DialTimeout("tcp", second, time.Second); err == nil {
		c.Close()
		t.Fatal("removed address still accepts")
	}
	// Not running: exit 7.
	d.zend(t, nil, "stop")
	if _, _, code := d.zend(t, nil, "reload"); code != 7 {
		t.Fatalf("reload when stopped: exit %d, want 7", code)
	}
}

// TestStopUnderLoad: every question asked before "zend stop" is answered.
func TestStopUnderLoad(t *testing.T) {
	for _, e := range daemonEngines {
		t.Run(e, func(t *testing.T) { testStopUnderLoad(t, e) })
	}
}

func testStopUnderLoad(t *testing.T, engine string) {
	maddr := freeAddr(t)
	d := newDaemonEnv(t, "[server]\nengine = \""+engine+"\"\nanswer_delay = \"300ms\"\n[metrics]\nlisten = \""+maddr+"\"\n")
	d.start(t)
	const clients = 100
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.DialTimeout("tcp", d.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "Explicit is better than?Simple is better than?")
		conns[i] = c
	}
	// Asked means read: zend counts a question when it reads it, before
	// its answer_delay. Each client's two questions came in one segment,
	// so once the first is counted the second is read too.
	waitAnswersCounted(t, maddr, "Implicit.", clients)
	stopped := make(chan int, 1)
	go func() { _, _, code := d.zend(t, nil, "stop"); stopped <- code }()
	var wg sync.WaitGroup
	var failed sync.Map
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := "Implicit.Complex."
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				failed.Store(i, fmt.Sprintf("%q %v", got, err))
			}
		}()
	}
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("client %v lost an answer: %v", k, v); return true })
	if code := <-stopped; code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	d.waitLog(t, fmt.Sprintf(`msg=stopped finished=%d cut_off=0`, clients))
}

func TestLogReopenAndRotation(t *testing.T) {
	d := newDaemonEnv(t, "[log]\nmax_size_mb = 1\nmax_backups = 2\ncompress = false\n")
	pid := d.start(t)
	// logrotate's create mode: rename, then SIGUSR1 makes a new file.
	if err := os.Rename(d.log, d.log+".1"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGUSR1)
	d.waitLog(t, `msg="log file reopened"`)
	if fi, err := os.Stat(d.log); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("new log file: %v %v, want mode 0640", fi, err)
	}
	if fd1, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); fd1 != d.log {
		t.Fatalf("fd 2 -> %q after reopen, want %s", fd1, d.log)
	}
	os.Remove(d.log + ".1")
	// Size rotation: write well over 3 MB of log lines (connections).
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				c, err := net.Dial("tcp", d.addr)
				if err != nil {
					continue
				}
				io.WriteString(c, strings.Repeat("x", 100)) // an incomplete question is logged with its bytes
				c.Close()
			}
		}()
	}
	wg.Wait()
	var backups []string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		backups, _ = filepath.Glob(filepath.Join(filepath.Dir(d.log), "zend-*.log"))
		if len(backups) == 2 {
			break
		}
	}
	if len(backups) != 2 {
		t.Fatalf("backups %v, want max_backups = 2", backups)
	}
	for _, b := range backups {
		if fi, _ := os.Stat(b); fi.Mode().Perm() != 0o640 {
			t.Errorf("%s mode %v, want 0640", b, fi.Mode().Perm())
		}
	}
	// fds 1 and 2 follow the rotation.
	if fd2, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); fd2 != d.log {
		t.Errorf("fd 2 -> %q after rotation, want %s", fd2, d.log)
	}
	var st1, st2 syscall.Stat_t
	syscall.Stat(d.log, &st1)
	syscall.Stat(fmt.Sprintf("/proc/%d/fd/2", pid), &st2)
	if st1.Ino != st2.Ino {
		t.Error("fd 2 is an old (rotated) file")
	}
}

// TestPrivilegeDrop binds a port below 1024 as root, then runs as nobody.
func TestPrivilegeDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root; this test needs it")
		}
		t.Skip("needs root")
	}
	port := 0
	for p := 700; p < 1000; p++ {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			ln.Close()
			port = p
			break
		}
	}
	d := newDaemonEnv(t, "[daemon]\nuser = \"nobody\"\n")
	d.addr = fmt.Sprintf("127.0.0.1:%d", port)
	d.write(t, "[daemon]\nuser = \"nobody\"\n")
	// nobody must reach its folders: open the test's temporary folders.
	for dir := d.dir; dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
	pid := d.start(t)
	uid := procStatus(t, pid, "Uid")
	gid := procStatus(t, pid, "Gid")
	if strings.Fields(uid)[0] != "65534" || len(strings.Fields(strings.ReplaceAll(uid, "65534", ""))) != 0 {
		t.Errorf("Uid %q, want 65534 in every field", uid)
	}
	if strings.Fields(gid)[0] != "65534" {
		t.Errorf("Gid %q, want nogroup (65534)", gid)
	}
	if groups := procStatus(t, pid, "Groups"); groups != "65534" {
		t.Errorf("supplementary groups %q, want only 65534", groups)
	}
	if a := askOnce(t, d.addr, "Beautiful is better than?"); a != "Ugly." {
		t.Errorf("answer on port %d: %q", port, a)
	}
	// Its own log folder is its user's, so it can reopen the log.
	syscall.Kill(pid, syscall.SIGUSR1)
	d.waitLog(t, `msg="log file reopened"`)
	out, _, _ := d.zend(t, nil, "status")
	if !strings.Contains(out, "user:        nobody") {
		t.Errorf("status: %s", out)
	}
	if _, errout, code := d.zend(t, nil, "stop"); code != 0 {
		t.Fatalf("stop: %s", errout)
	}
	if _, err := os.Stat(d.pidfile); !os.IsNotExist(err) {
		t.Error("pidfile left after stop")
	}
}
