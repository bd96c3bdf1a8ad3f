package main_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestUnderSupervisord follows the README's supervisord install
// literally, on a private host: the user zend made with the README's
// useradd, supervisord run as its package's service runs it, the shipped
// [program:zend] copied to /etc/supervisor/conf.d with only the binary's
// path changed, then "supervisorctl update". The operator's
// /etc/zend.toml gives the port. (Seen: "Invalid user name zend", then
// BACKOFF on a missing /etc/zend.toml.)
func TestUnderSupervisord(t *testing.T) {
	needSystem(t, "the README's supervisord install with the shipped [program:zend]")
	supervisord := tool(t, "supervisord", "/usr/bin/supervisord")
	tool(t, "supervisorctl", "/usr/bin/supervisorctl")
	h := newPrivateHost(t)
	addr, maddr := freeAddr(t), freeAddr(t)
	writeCfg := func(answer string) {
		writeFile(t, h.path("etc"), "zend.toml", fmt.Sprintf("[server]\nlisten = [%q]\nanswer_delay = \"300ms\"\n[metrics]\nlisten = %q\n[answers]\n\"Readability counts?\" = %q\n", addr, maddr, answer))
	}
	writeCfg("Yes.")
	// The folder supervisor's package makes for its logs.
	if err := os.MkdirAll(h.path("var/log/supervisor"), 0o755); err != nil {
		t.Fatal(err)
	}
	useradd := readmeCommand(t, "## Running under supervisord", "useradd ")
	sd := h.start(t, useradd+"\nexec "+supervisord+" -n -c /etc/supervisor/supervisord.conf\n")
	ctl := func(args ...string) (string, int) {
		t.Helper()
		return h.sh(t, sd.cmd.Process.Pid, "supervisorctl "+strings.Join(args, " "))
	}
	stdoutLog := h.path("var/log/supervisor/zend.log")
	t.Cleanup(func() {
		ctl("shutdown")
		sd.wait(t, 30*time.Second)
		if t.Failed() {
			out, _ := os.ReadFile(stdoutLog)
			t.Logf("zend's output:\n%s\nsupervisord:\n%s", out, sd.log())
		}
	})
	waitUntil(t, 20*time.Second, "supervisord's socket", func() (bool, string) {
		_, code := ctl("status")
		return code == 0, ""
	})
	shipped, err := os.ReadFile("../../packaging/supervisor/zend.conf")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.path("etc/supervisor/conf.d"), "zend.conf", strings.ReplaceAll(string(shipped), "/usr/sbin/zend", filepath.Join(bin, "zend")))
	if out, code := ctl("update"); code != 0 {
		t.Fatalf("supervisorctl update: %d %s", code, out)
	}
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
	if uid, want := strings.Fields(procStatus(t, pid(), "Uid"))[0], h.uid(t, "zend"); uid != want {
		t.Errorf("zend runs as uid %s, want zend's %s (user=)", uid, want)
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

	// stop ends it gracefully: zend logs its drain after this stop (not
	// the restart's, earlier) and exits 0, as supervisord records; a
	// SIGKILL after stopwaitsecs would say "terminated by SIGKILL".
	outBefore, _ := os.ReadFile(stdoutLog)
	sdLog := h.path("var/log/supervisor/supervisord.log")
	sdBefore, _ := os.ReadFile(sdLog)
	if out, code := ctl("stop", "zend"); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("supervisorctl stop: %d %s", code, out)
	}
	out, _ := os.ReadFile(stdoutLog)
	if after := out[len(outBefore):]; !regexp.MustCompile(`msg=stopped finished=\d+ cut_off=0`).Match(after) {
		t.Errorf("no graceful stop in zend's output after the stop:\n%s", after)
	}
	sdAfter, _ := os.ReadFile(sdLog)
	if after := sdAfter[len(sdBefore):]; !regexp.MustCompile(`stopped: zend \(exit status 0\)`).Match(after) {
		t.Errorf("supervisord did not see zend exit 0 on stop:\n%s", after)
	}
	if st, _ := ctl("status", "zend"); !strings.Contains(st, "STOPPED") {
		t.Errorf("status after stop: %s", st)
	}
}
