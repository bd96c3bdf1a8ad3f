package main_test

import (
	"encoding/json"
	"fmt"
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

// readmeAfter returns the README from marker on.
func readmeAfter(t *testing.T, marker string) string {
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
	return s[i:]
}

// readmeBlock returns the shell block of the README that follows marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	s := readmeAfter(t, marker)
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

// privateHost is this machine as a new user finds it, in a mount
// namespace of its own, so that the README's by-hand steps (useradd,
// files copied into /etc) run as written without changing the machine:
// /etc is a copy of the real one without zend.toml; /dev holds null,
// zero, full, random and urandom, and at /dev/log a syslog socket the
// test reads; /run and /var/log are empty.
type privateHost struct {
	root string // holds etc, dev, run and var/log

	mu     sync.Mutex
	syslog strings.Builder // every record that reached /dev/log, one a line
}

func newPrivateHost(t *testing.T) *privateHost {
	t.Helper()
	needRoot(t)
	tool(t, "unshare", "/usr/bin/unshare")
	tool(t, "nsenter", "/usr/bin/nsenter")
	h := &privateHost{root: shared(t)}
	if out, err := exec.Command("cp", "-a", "/etc", filepath.Join(h.root, "etc")).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc: %v %s", err, out)
	}
	os.Remove(filepath.Join(h.root, "etc", "zend.toml"))
	for _, d := range []string{"dev", "run", "var/log"} {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := listenDgram(t, filepath.Join(h.root, "dev", "log"))
	go func() {
		for d := range srv.recv {
			h.mu.Lock()
			h.syslog.WriteString(strings.TrimSuffix(d, "\n") + "\n")
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("syslog of the private host:\n%s", h.records())
		}
	})
	return h
}

// enter is the shell text that makes the current mount namespace the
// private host; run it in a fresh one (unshare --mount).
func (h *privateHost) enter() string {
	var b strings.Builder
	for _, d := range []string{"null", "zero", "full", "random", "urandom"} {
		fmt.Fprintf(&b, "touch %[1]s/dev/%[2]s && mount --bind /dev/%[2]s %[1]s/dev/%[2]s\n", h.root, d)
	}
	fmt.Fprintf(&b, "mount --bind %[1]s/etc /etc\nmount --rbind %[1]s/dev /dev\nmount --bind %[1]s/run /run\nmount --bind %[1]s/var/log /var/log\n", h.root)
	return b.String()
}

// start runs script in a new mount namespace made the private host; the
// script's last line should exec the program the test then holds by pid.
func (h *privateHost) start(t *testing.T, script string) *proc {
	t.Helper()
	p := start(t, "/usr/bin/unshare", nil, "--mount", "--propagation", "private", "sh", "-ec", h.enter()+script)
	// Stop what it started first, by pid: children before the parent.
	t.Cleanup(func() { killTree(p.cmd.Process.Pid) })
	return p
}

// sh runs a shell line in the private host of the process pid (one that
// start started) and returns its output and exit code.
func (h *privateHost) sh(t *testing.T, pid int, line string) (string, int) {
	t.Helper()
	out, errout, code := runCmd(t, exec.Command("nsenter", "--target", strconv.Itoa(pid), "--mount", "sh", "-c", line))
	return out + errout, code
}

// path is where a file of the private host lives on the machine.
func (h *privateHost) path(name string) string { return filepath.Join(h.root, name) }

// records returns the syslog records received so far.
func (h *privateHost) records() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.syslog.String()
}

// waitSyslog waits up to d for the records to match re, and returns the
// submatches.
func (h *privateHost) waitSyslog(t *testing.T, d time.Duration, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitUntil(t, d, "a syslog record "+re, func() (bool, string) {
		m = rx.FindStringSubmatch(h.records())
		return m != nil, ""
	})
	return m
}

// uid returns the uid of user in the private host's /etc/passwd.
func (h *privateHost) uid(t *testing.T, user string) string {
	t.Helper()
	b, _ := os.ReadFile(h.path("etc/passwd"))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] == user {
			return f[2]
		}
	}
	t.Fatalf("no user %s in the private /etc/passwd", user)
	return ""
}

// readmeCommand returns the first command of the README that starts with
// prefix and is quoted in backticks after marker, its lines joined.
func readmeCommand(t *testing.T, marker, prefix string) string {
	t.Helper()
	m := regexp.MustCompile("`(" + regexp.QuoteMeta(prefix) + "[^`]*)`").FindStringSubmatch(readmeAfter(t, marker))
	if m == nil {
		t.Fatalf("README has no `%s...` after %q", prefix, marker)
	}
	return strings.Join(strings.Fields(m[1]), " ")
}

// childrenOf returns the pids of pid's live children.
func childrenOf(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st := procStat(p); len(st) > 1 && st[1] == strconv.Itoa(pid) && st[0] != "Z" {
			kids = append(kids, p)
		}
	}
	return kids
}

// killTree kills pid's descendants, deepest first, then pid.
func killTree(pid int) {
	for _, c := range childrenOf(pid) {
		killTree(c)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}
