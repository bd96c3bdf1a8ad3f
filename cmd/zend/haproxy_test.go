package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// haproxyState returns each server's operational state (2 = up) from
// HAProxy's stats socket.
func haproxyState(t *testing.T, sock string) map[string]int {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "show servers state zend\n")
	b, _ := io.ReadAll(c)
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[1] == "zend" {
			out[f[3]], _ = strconv.Atoi(f[5])
		}
	}
	return out
}

// TestHAProxyFailover runs three zend instances behind the real HAProxy
// with the shipped configuration (addresses rewritten): answers under load,
// kill -9 of one instance, HAProxy marks it down, it restarts and rejoins,
// and zend logs the real client address it learns from PROXY v2.
func TestHAProxyFailover(t *testing.T) {
	haproxy := tool(t, "haproxy", "/usr/sbin/haproxy")
	dir := shared(t)
	cfg := filepath.Join(t.TempDir(), "zend.toml") // root acts on it: only root may change it
	os.WriteFile(cfg, []byte("[server]\nproxy_protocol = true\nproxy_trusted = [\"127.0.0.1\"]\n"), 0o644)
	names := []string{"a", "b", "c"}
	addrs := map[string]string{}
	procs := map[string]*proc{}
	startInstance := func(n string) {
		procs[n] = start(t, "zend", nil, "-c", cfg, "-listen", addrs[n], "-engine", map[string]string{"a": "goroutine", "b": "eventloop", "c": "uring"}[n], "run")
		waitDial(t, addrs[n])
	}
	for _, n := range names {
		addrs[n] = freeAddr(t)
		startInstance(n)
	}
	front := freeAddr(t)
	sock := filepath.Join(dir, "admin.sock")
	shipped, err := os.ReadFile("../../packaging/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"bind 0.0.0.0:1060", "bind "+front,
		"/run/haproxy/zend-admin.sock", sock,
		"127.0.0.1:1071", addrs["a"], "127.0.0.1:1072", addrs["b"], "127.0.0.1:1073", addrs["c"],
	).Replace(string(shipped))
	confPath := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(confPath, []byte(conf), 0o644)
	hp := start(t, haproxy, nil, "-db", "-f", confPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy:\n%s", hp.log())
		}
	})
	allUp := func(want int) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			up := 0
			for _, st := range haproxyState(t, sock) {
				if st == 2 {
					up++
				}
			}
			if up == want {
				return
			}
		}
		t.Fatalf("not %d servers up: %v", want, haproxyState(t, sock))
	}
	allUp(3)

	// The real client address reaches zend.
	c, err := net.DialTimeout("tcp", front, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "Simple is better than?")
	if a, err := bufio.NewReader(c).ReadString('.'); err != nil || a != "Complex." {
		t.Fatalf("through haproxy: %q %v", a, err)
	}
	myAddr := c.LocalAddr().String()
	c.Close()
	seen := false
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !seen; time.Sleep(20 * time.Millisecond) {
		for _, p := range procs {
			if strings.Contains(p.log(), "client="+myAddr) {
				seen = true
			}
		}
	}
	if !seen {
		t.Errorf("no zend logged the real client %s", myAddr)
	}

	// Load: clients asking the three questions on new connections.
	ld := startLoad(8, func() error { return askThree(front) })
	ld.waitMore(t, 40)
	before := ld.failed.Load()
	procs["b"].cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	allUp(2) // HAProxy marks it down
	markedDown := time.Since(killed)
	ld.waitMore(t, 40) // served by the two left
	during := ld.failed.Load() - before
	startInstance("b")
	allUp(3) // it rejoins
	procs["b"].waitLog(t, `msg=accepted`)
	asked, failed, failures := ld.halt()
	t.Logf("%d conversations through HAProxy; kill -9 of one of three instances: marked down after %v, %d conversations failed during the fail-over (%v)",
		asked, markedDown.Round(time.Millisecond), during, failures)
	if failed > during {
		t.Errorf("%d conversations failed outside the fail-over window", failed-during)
	}
	if during > 8 {
		t.Errorf("%d conversations failed during the fail-over, want at most one per client", during)
	}
	if !strings.Contains(procs["b"].log(), "msg=accepted") {
		t.Error("the restarted instance got no traffic after rejoining")
	}
}

// askThree asks the three questions on a new connection.
func askThree(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, qa := range [][2]string{{"Beautiful is better than?", "Ugly."}, {"Explicit is better than?", "Implicit."}, {"Simple is better than?", "Complex."}} {
		if _, err := io.WriteString(c, qa[0]); err != nil {
			return err
		}
		a, err := r.ReadString('.')
		if err != nil {
			return err
		}
		if a != qa[1] {
			return fmt.Errorf("wrong answer %q", a)
		}
	}
	return nil
}
