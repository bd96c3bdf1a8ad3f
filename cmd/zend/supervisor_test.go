package main_test

import (
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

// TestUnderSupervisord runs the shipped [program:zend] (paths rewritten)
// under the real supervisord.
func TestUnderSupervisord(t *testing.T) {
	needSystem(t, "the shipped [program:zend] under the real supervisord")
	supervisord := tool(t, "supervisord", "/usr/bin/supervisord")
	supervisorctl := tool(t, "supervisorctl", "/usr/bin/supervisorctl")
	dir := shared(t)
	addr, maddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "zend.toml")
	writeCfg := func(answer string) {
		os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = [%q]\nanswer_delay = \"300ms\"\n[metrics]\nlisten = %q\n[answers]\n\"Readability counts?\" = %q\n", addr, maddr, answer)), 0o644)
	}
	writeCfg("Yes.")
	shipped, err := os.ReadFile("../../packaging/supervisor/zend.conf")
	if err != nil {
		t.Fatal(err)
	}
	// Only the paths change: the binary's, and the configuration's
	// (the shipped line reads /etc/zend.toml, the default).
	prog := strings.NewReplacer(
		"/usr/sbin/zend run", filepath.Join(bin, "zend")+" -c "+cfg+" run",
		"/var/log/supervisor/zend.log", filepath.Join(dir, "zend-stdout.log"),
		"user=zend", "user=nobody",
	).Replace(string(shipped))
	os.WriteFile(filepath.Join(dir, "zend.conf"), []byte(prog), 0o644)
	conf := filepath.Join(dir, "supervisord.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[unix_http_server]
file=%[1]s/s.sock
[supervisord]
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s
user=root
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://%[1]s/s.sock
[include]
files = %[1]s/zend.conf
`, dir)), 0o644)
	sd := start(t, supervisord, nil, "-n", "-c", conf)
	ctl := func(args ...string) (string, int) {
		t.Helper()
		out, errout, code := runCmd(t, exec.Command(supervisorctl, append([]string{"-c", conf}, args...)...))
		return out + errout, code
	}
	t.Cleanup(func() {
		ctl("shutdown")
		sd.wait(t, 30*time.Second)
		for _, pid := range processesWith(cfg) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "zend-stdout.log"))
			t.Logf("zend's output:\n%s\nsupervisord:\n%s", out, sd.log())
		}
	})
	pid := func() int {
		t.Helper()
		out, _ := ctl("pid", "zend")
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n
	}
	running := func() {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if out, code := ctl("status", "zend"); code == 0 && strings.Contains(out, "RUNNING") {
				waitDial(t, addr)
				return
			}
		}
		out, _ := ctl("status", "zend")
		t.Fatalf("zend not RUNNING under supervisord: %s", out)
	}
	running()
	client(t, addr)
	if uid := procStatus(t, pid(), "Uid"); strings.Fields(uid)[0] != "65534" {
		t.Errorf("zend runs as %s, want nobody (user=)", uid)
	}

	// restart under load: every question asked before it is answered.
	conns := make([]net.Conn, 30)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "Beautiful is better than?")
		conns[i] = c
	}
	// Asked means read: wait until zend has read every question (and
	// the one client() asked before).
	waitAnswersCounted(t, maddr, "Ugly.", len(conns)+1)
	before := pid()
	var wg sync.WaitGroup
	lost := make(chan string, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]byte, 5)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "Ugly." {
				lost <- fmt.Sprintf("client %d: %q %v", i, got, err)
			}
		}()
	}
	if out, code := ctl("restart", "zend"); code != 0 {
		t.Fatalf("supervisorctl restart: %s", out)
	}
	wg.Wait()
	close(lost)
	for l := range lost {
		t.Errorf("answer lost in a restart: %s", l)
	}
	running()
	if pid() == before {
		t.Fatal("restart kept the pid")
	}
	client(t, addr)

	// kill -9: supervisord starts it again.
	victim := pid()
	syscall.Kill(victim, syscall.SIGKILL)
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && (pid() == victim || pid() == 0); {
		time.Sleep(100 * time.Millisecond)
	}
	running()
	client(t, addr)

	// signal HUP reloads a changed answer.
	writeCfg("Very much.")
	if out, code := ctl("signal", "HUP", "zend"); code != 0 {
		t.Fatalf("signal HUP: %s", out)
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if askOnce(t, addr, "Readability counts?") == "Very much." {
			break
		}
	}
	if a := askOnce(t, addr, "Readability counts?"); a != "Very much." {
		t.Fatalf("after signal HUP: %q", a)
	}

	// stop ends it gracefully: exit status 0 is expected, not a crash.
	if out, code := ctl("stop", "zend"); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("supervisorctl stop: %d %s", code, out)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "zend-stdout.log"))
	if !regexp.MustCompile(`msg=stopped finished=\d+ cut_off=0`).Match(out) {
		t.Errorf("no graceful stop in zend's output:\n%s", out)
	}
	if st, _ := ctl("status", "zend"); !strings.Contains(st, "STOPPED") {
		t.Errorf("status after stop: %s", st)
	}
}
