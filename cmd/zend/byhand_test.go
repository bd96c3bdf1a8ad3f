package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the shell block of the README that follows marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("no shell block after %q", marker)
	}
	return s[start+6 : start+6+end]
}

// TestSystemdByHand follows the README's by-hand systemd install as
// written, in a booted Debian container without the package: build the
// binaries as it says, run its block in a copy of the checkout (only the
// sample's port changed), then use the unit (seen: status=226/NAMESPACE,
// because the unit needed a folder only the package created).
func TestSystemdByHand(t *testing.T) {
	needSystem(t, "the README's by-hand systemd install in a container without the package")
	src := shared(t)
	// The build step, as the README gives it.
	build := exec.Command("go", "build", "-o", filepath.Join(src, "bin")+"/", "zend/cmd/...")
	build.Env = append(cleanEnv(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	addr := freeAddr(t)
	sample, _ := os.ReadFile("../../etc/zend.toml")
	conf := strings.Replace(string(sample), `listen = ["127.0.0.1:1060"]`, fmt.Sprintf("listen = [%q]", addr), 1)
	if conf == string(sample) {
		t.Fatal("etc/zend.toml no longer listens on 127.0.0.1:1060: update the test")
	}
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "zend.toml"), []byte(conf), 0o644)
	os.MkdirAll(filepath.Join(src, "packaging", "systemd"), 0o755)
	units, _ := filepath.Glob("../../packaging/systemd/*")
	for _, u := range units {
		b, _ := os.ReadFile(u)
		os.WriteFile(filepath.Join(src, "packaging", "systemd", filepath.Base(u)), b, 0o644)
	}
	block := readmeBlock(t, "<!-- by-hand systemd")

	c := bootContainer(t, src+":/mnt/src")
	t.Cleanup(func() {
		if t.Failed() {
			j, _ := c.exec("journalctl", "--no-pager", "-n", "80")
			t.Logf("container journal:\n%s", j)
		}
	})
	if out, code := c.exec("sh", "-exc", "cd /mnt/src && "+block); code != 0 {
		t.Fatalf("the README's block failed (exit %d):\n%s", code, out)
	}
	pid := c.waitActive("zend.service", "")
	waitDial(t, addr)
	client(t, addr)
	if uid := c.sh("ps -o user= -p " + pid); uid != "zend" {
		t.Errorf("daemon runs as %q, want zend", uid)
	}
	if perms := c.sh("stat -c '%U:%G %a' /var/log/zend"); perms != "zend:adm 2750" {
		t.Errorf("/var/log/zend is %s, want zend:adm 2750 as the package makes it", perms)
	}
	c.must("test", "-s", "/var/log/zend/zend.log")
	c.must("systemctl", "reload", "zend.service")

	// log.file = "journal": native entries with the conversation's fields.
	c.sh(`sed -i 's|^\[log\]$|[log]\nfile = "journal"|' /etc/zend.toml && grep -q '^file = "journal"' /etc/zend.toml`)
	c.must("systemctl", "restart", "zend.service")
	c.waitActive("zend.service", "")
	waitDial(t, addr)
	client(t, addr)
	e := c.waitJournal(t, "a conversation's end with a CLIENT field", func(e map[string]any) bool {
		msg, _ := e["MESSAGE"].(string)
		cl, _ := e["CLIENT"].(string)
		return strings.HasPrefix(msg, "closed") && strings.HasPrefix(cl, "127.0.0.1:")
	})
	if e["PRIORITY"] != "6" || e["_TRANSPORT"] != "journal" {
		t.Errorf("the conversation's end is not a native entry at info (6): %v", e)
	}

	// log.file = "syslog" to journald's /dev/log, in the default form:
	// journald files it under zend, with the pid and severity. (RFC 5424
	// there became identifier-less text.)
	c.sh(`sed -i 's|^file = "journal"$|file = "syslog"|' /etc/zend.toml && grep -q '^file = "syslog"' /etc/zend.toml`)
	c.must("systemctl", "restart", "zend.service")
	pid = c.waitActive("zend.service", "")
	waitDial(t, addr)
	client(t, addr)
	e = c.waitJournal(t, "a syslog record of a conversation's end", func(e map[string]any) bool {
		msg, _ := e["MESSAGE"].(string)
		return e["_TRANSPORT"] == "syslog" && strings.HasPrefix(msg, "closed client=127.0.0.1:")
	})
	if e["SYSLOG_PID"] != pid || e["PRIORITY"] != "6" || e["SYSLOG_FACILITY"] != "3" {
		t.Errorf("journald parsed the syslog record as %v; want SYSLOG_PID %s, PRIORITY 6, SYSLOG_FACILITY 3", e, pid)
	}
	c.must("systemctl", "stop", "zend.service")
	// The notify unit, by hand too.
	c.must("systemctl", "start", "zend-notify.service")
	c.waitActive("zend-notify.service", "")
	waitDial(t, addr)
	client(t, addr)
	c.must("systemctl", "stop", "zend-notify.service")
}

// waitJournal waits up to 20 s for an entry of SYSLOG_IDENTIFIER=zend
// that match accepts, and returns it.
func (c *container) waitJournal(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		entries := c.must("journalctl", "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=zend")
		for _, line := range strings.Split(entries, "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && match(e) {
				return e
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no journal entry of %s:\n%s", what, entries)
		}
	}
}
