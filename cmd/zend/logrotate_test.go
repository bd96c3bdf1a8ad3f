package main_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logrotateBin finds logrotate: a failure under CI, a skip elsewhere.
func logrotateBin(t *testing.T) string {
	t.Helper()
	return tool(t, "logrotate", "/usr/sbin/logrotate")
}

// touchLog makes the daemon log a line (an incomplete question is logged
// at info level).
func touchLog(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "touch")
	c.Close()
}

// waitFile waits until the file matches re, making the daemon log lines
// meanwhile, and fails with what was last seen.
func waitFile(t *testing.T, path, addr, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	var b []byte
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if b, _ = os.ReadFile(path); rx.Match(b) {
			return
		}
		touchLog(t, addr)
	}
	t.Fatalf("%s lacks %q:\n%s", path, re, b)
}

// TestShippedLogrotateSnippet (finding 6): the shipped logrotate example,
// with only its paths and user changed, rotates the log of a daemon that
// dropped to its user, and the daemon goes on in the new file.
func TestShippedLogrotateSnippet(t *testing.T) {
	lr := logrotateBin(t)
	a := newAttacker(t)
	d := newUserDaemonEnv(t, a, "[log]\nmax_size_mb = 0\n")
	pid := d.start(t)
	touchLog(t, d.addr)
	snippet, err := os.ReadFile("../../packaging/logrotate/zend.example")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"/var/log/zend/zend.log", d.log,
		"su zend adm", "su "+a.name+" "+a.name,
		"create 0640 zend adm", "create 0640 "+a.name+" "+a.name,
		"/usr/sbin/zend -c /etc/zend.toml", filepath.Join(bin, "zend")+" -c "+d.cfg,
	).Replace(string(snippet))
	confPath := writeFile(t, d.dir, "logrotate.conf", conf)
	os.Chmod(confPath, 0o644)
	out, err := exec.Command(lr, "-f", "-s", filepath.Join(d.dir, "logrotate.state"), confPath).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	if _, err := os.Stat(d.log + ".1"); err != nil {
		t.Fatalf("logrotate did not rotate: %v\n%s", err, out)
	}
	waitFile(t, d.log, d.addr, `msg="log file reopened"`)
	waitFile(t, d.log, d.addr, `incomplete question`)
	if fd2, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); fd2 != d.log {
		t.Errorf("fd 2 -> %s, want %s", fd2, d.log)
	}
	if b, _ := os.ReadFile(d.log); strings.Contains(string(b), "cannot reopen") {
		t.Errorf("the reopen failed:\n%s", b)
	}
}

// TestFailedReopenIsLoudAndRetried (finding 6): a new log file the daemon
// cannot open (logrotate's old "create 0640 root adm") is reported at
// error level in the old file, counted in the metrics, and retried: once
// the file is the daemon's, it writes there again without a signal.
func TestFailedReopenIsLoudAndRetried(t *testing.T) {
	a := newAttacker(t)
	maddr := freeAddr(t)
	d := newUserDaemonEnv(t, a, fmt.Sprintf("[metrics]\nlisten = %q\n", maddr))
	pid := d.start(t)
	touchLog(t, d.addr)
	if err := os.Rename(d.log, d.log+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.log, nil, 0o640); err != nil { // root's, as "create 0640 root adm"
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGUSR1)
	waitFile(t, d.log+".1", d.addr, `level=ERROR msg="cannot reopen the log file`)
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^zend_log_reopen_failures_total [1-9]`).Match(body) {
		t.Errorf("metrics do not count the failure:\n%s", body)
	}
	// The operator fixes the owner: the next check reopens by itself.
	if err := os.Chown(d.log, a.uid, a.gid); err != nil {
		t.Fatal(err)
	}
	waitFile(t, d.log, d.addr, `msg="log file reopened after failures"`)
	waitFile(t, d.log, d.addr, `incomplete question`)
}
