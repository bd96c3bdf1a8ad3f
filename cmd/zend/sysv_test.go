package main_test

// The Debian package's /etc/init.d/zend under SysV-style service
// management, with no systemd running: the bookworm tree of the systemd
// test, run by systemd-nspawn --as-pid2 (a stub init as PID 1 that reaps
// orphans, no systemd) in its own PID and mount namespaces with its own
// /proc, on a throwaway overlay. The network is the host's.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sysvChroot starts the tree with the given read-only bind mounts
// (HOST:GUEST) and returns a container whose exec runs commands in it.
// Everything started inside dies with it when the test ends.
func sysvChroot(t *testing.T, binds ...string) *container {
	t.Helper()
	nspawn := tool(t, "systemd-nspawn", "/usr/bin/systemd-nspawn")
	tool(t, "nsenter", "/usr/bin/nsenter")
	tool(t, "pgrep", "/usr/bin/pgrep")
	ensureRootfs(t)
	args := []string{"-D", rootfs, "--volatile=overlay", "--as-pid2", "--register=no", "--keep-unit",
		"--machine=zendsysv" + strconv.Itoa(os.Getpid()%100000), "--console=pipe", "--quiet"}
	for _, b := range binds {
		args = append(args, "--bind-ro="+b)
	}
	// PID 2 only waits; the test enters the namespaces with nsenter.
	args = append(args, "/bin/sleep", "infinity")
	c := &container{t: t, nspawn: start(t, nspawn, nil, args...)}
	t.Cleanup(func() {
		// The stub init ends the namespace, and every process in it.
		c.nspawn.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.nspawn.done:
		case <-time.After(20 * time.Second):
			c.nspawn.cmd.Process.Kill()
			<-c.nspawn.done
		}
	})
	nspawnPid := strconv.Itoa(c.nspawn.cmd.Process.Pid)
	for end := time.Now().Add(30 * time.Second); c.leader == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no sleep as PID 2 in the namespace; nspawn:\n%s", c.nspawn.log())
		}
		select {
		case <-c.nspawn.done:
			t.Fatalf("systemd-nspawn exited: %v\n%s", c.nspawn.err, c.nspawn.log())
		default:
		}
		stub, _ := runOut("pgrep", "-P", nspawnPid)
		if stub == "" || strings.Contains(stub, "\n") {
			continue
		}
		pid2, _ := runOut("pgrep", "-P", stub, "-x", "sleep")
		c.leader, _ = strconv.Atoi(pid2)
	}
	// No systemd: the init script, service and invoke-rc.d take the
	// SysV path only when /run/systemd/system is absent.
	if _, code := c.exec("test", "-e", "/run/systemd/system"); code == 0 {
		t.Fatal("/run/systemd/system exists in the namespace: the SysV path would not be tested")
	}
	return c
}

// runOut runs a short host command and returns its trimmed stdout.
func runOut(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	timer := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

func TestSysVInitScript(t *testing.T) {
	needSystem(t, "the Debian package's /etc/init.d/zend driven by service and invoke-rc.d in a bookworm tree with no systemd running (systemd-nspawn --as-pid2; about 1 minute)")
	deb := buildDeb(t)
	port, port2 := freePort(t), freePort(t)
	seed := shared(t)
	// The administrator's /etc/zend.toml (kept by dpkg --force-confold):
	// the packaged one on a free port.
	sample, err := os.ReadFile("../../etc/zend.toml")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(sample), `listen = ["127.0.0.1:1060"]`, fmt.Sprintf(`listen = ["127.0.0.1:%d"]`, port), 1)
	conf = strings.Replace(conf, `user = ""`, `user = "zend"`, 1)
	conf = strings.Replace(conf, `group = ""`, `group = "zend"`, 1)
	writeFile(t, seed, "zend.toml", conf)
	// A policy-rc.d that lets maintainer scripts start services.
	os.WriteFile(filepath.Join(seed, "policy-rc.d"), []byte("#!/bin/sh\nexit 0\n"), 0o755)

	c := sysvChroot(t, filepath.Dir(deb)+":/mnt/deb", seed+":/mnt/seed")
	// in runs a command inside and fails the test unless it exits want;
	// on failure it shows zend's log.
	in := func(want int, args ...string) string {
		t.Helper()
		out, code := c.exec(args...)
		if code != want {
			log, _ := c.exec("sh", "-c", "tail -n 30 /var/log/zend/zend.log")
			t.Fatalf("%q: exit %d, want %d\n%s\nzend.log:\n%s", args, code, want, out, log)
		}
		return out
	}
	sh := func(want int, line string) string { t.Helper(); return in(want, "sh", "-c", line) }
	// serves checks, from inside the namespace, with the packaged
	// zen-client, that the daemon on p answers Beautiful with answer
	// (-ask: other answers than the built-in ones are no error).
	serves := func(p int, answer string) {
		t.Helper()
		out := in(0, "zen-client", "-p", strconv.Itoa(p), "-ask", "Beautiful is better than?", "127.0.0.1")
		if want := "Beautiful is better than? " + answer + "\n"; !strings.Contains(out, want) {
			t.Fatalf("zen-client said %q, want a line %q", out, want)
		}
	}
	pidfile := func() string { t.Helper(); return strings.TrimSpace(sh(0, "cat /run/zend/zend.pid")) }
	noZend := func(when string) {
		t.Helper()
		if out, code := c.exec("pgrep", "-a", "-x", "zend"); code != 1 {
			t.Fatalf("%s: zend processes left (pgrep exit %d):\n%s", when, code, out)
		}
	}
	// waitStatus waits until service zend status exits want.
	waitStatus := func(want int) string {
		t.Helper()
		var out string
		var code int
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if out, code = c.exec("service", "zend", "status"); code == want {
				return out
			}
		}
		t.Fatalf("service zend status: exit %d, want %d\n%s", code, want, out)
		return ""
	}

	sh(0, "cp /mnt/seed/zend.toml /etc/zend.toml && install -m 0755 /mnt/seed/policy-rc.d /usr/sbin/policy-rc.d")
	// dpkg -i: postinst registers the script (update-rc.d defaults) and
	// starts it through invoke-rc.d, which passes on its caller's
	// environment: a stray ZEND_* variable of the administrator's must not
	// reach zend (it refuses unknown ones).
	out := in(0, "env", "ZEND_STRAY=1", "dpkg", "-i", "--force-confold", "/mnt/deb/"+filepath.Base(deb))
	if !strings.Contains(out, "Starting Zen-of-Python daemon: zend") {
		t.Errorf("dpkg -i did not start zend through the init script:\n%s", out)
	}
	links := sh(0, "cd /etc && ls -1 rc?.d/*zend")
	for _, l := range []string{"0K", "1K", "2S", "3S", "4S", "5S", "6K"} {
		if !regexp.MustCompile(`(?m)^rc` + l[:1] + `\.d/` + l[1:] + `\d\dzend$`).MatchString(links) {
			t.Errorf("no %s link in rc%s.d after dpkg -i:\n%s", l[1:], l[:1], links)
		}
	}
	if cf := in(0, "dpkg-query", "-W", "-f=${Conffiles}", "zend"); !strings.Contains(cf, "/etc/init.d/zend") {
		t.Errorf("/etc/init.d/zend is not a conffile: %s", cf)
	}
	st := waitStatus(0)
	pid := pidfile()
	if !strings.Contains(st, "zend is running (pid "+pid+")") {
		t.Errorf("service zend status:\n%s", st)
	}
	if u := strings.TrimSpace(in(0, "ps", "-o", "user=", "-p", pid)); u != "zend" {
		t.Errorf("daemon runs as %q, want zend", u)
	}
	serves(port, "Ugly.")

	// start on a running service: LSB success, nothing new started.
	in(0, "service", "zend", "start")
	if p := pidfile(); p != pid {
		t.Errorf("service zend start on a running zend: pid %s -> %s", pid, p)
	}

	// stop, then start by hand.
	in(0, "service", "zend", "stop")
	if out := waitStatus(3); !strings.Contains(out, "not running") {
		t.Errorf("status after stop:\n%s", out)
	}
	noZend("after service zend stop")
	in(0, "service", "zend", "stop") // stopping a stopped service succeeds
	in(7, "service", "zend", "reload")
	in(0, "service", "zend", "start")
	waitStatus(0)
	serves(port, "Ugly.")

	// reload applies a changed answer.
	sh(0, `printf '"Beautiful is better than?" = "Lovely."\n' >>/etc/zend.toml`)
	pid = pidfile()
	in(0, "service", "zend", "reload")
	serves(port, "Lovely.")
	if p := pidfile(); p != pid {
		t.Errorf("reload changed the pid %s -> %s", pid, p)
	}
	// A broken file: reload fails and changes nothing; restart refuses to
	// stop the daemon.
	sh(0, "cp /etc/zend.toml /etc/zend.toml.good && printf '[nonsense]\\n' >>/etc/zend.toml")
	in(1, "service", "zend", "reload")
	in(1, "service", "zend", "restart")
	serves(port, "Lovely.")
	sh(0, "mv /etc/zend.toml.good /etc/zend.toml")
	in(0, "service", "zend", "restart")
	if p := pidfile(); p == pid {
		t.Errorf("restart kept pid %s", pid)
	}
	in(0, "service", "zend", "try-restart")
	serves(port, "Lovely.")

	// kill -9: the pidfile stays behind; LSB status 1.
	pid = pidfile()
	in(0, "kill", "-9", pid)
	if out := waitStatus(1); !strings.Contains(out, "dead") {
		t.Errorf("status after kill -9:\n%s", out)
	}
	noZend("after kill -9")
	in(0, "service", "zend", "try-restart") // not running: nothing to do
	in(1, "service", "zend", "status")
	in(0, "service", "zend", "start") // over the stale pidfile
	waitStatus(0)
	serves(port, "Lovely.")

	// /etc/default/zend: another configuration file and more flags.
	alt := strings.Replace(conf, fmt.Sprintf(`listen = ["127.0.0.1:%d"]`, port), fmt.Sprintf(`listen = ["127.0.0.1:%d"]`, port2), 1)
	writeFile(t, seed, "alt.toml", alt+"\"Beautiful is better than?\" = \"Fine.\"\n")
	sh(0, `cp /mnt/seed/alt.toml /etc/zend-alt.toml && printf 'ZEND_CONFIG=/etc/zend-alt.toml\nZEND_OPTS="-set log.level=debug"\n' >/etc/default/zend`)
	in(0, "service", "zend", "restart")
	st = waitStatus(0)
	if !strings.Contains(st, "/etc/zend-alt.toml") {
		t.Errorf("status with /etc/default/zend does not name its file:\n%s", st)
	}
	serves(port2, "Fine.")

	// dpkg -r stops it (prerm, invoke-rc.d); the script, a conffile, and
	// its links stay; the script then knows zend is gone.
	in(0, "dpkg", "-r", "zend")
	noZend("after dpkg -r")
	in(0, "test", "-x", "/etc/init.d/zend")
	if links := sh(0, "ls /etc/rc2.d"); !regexp.MustCompile(`S\d\dzend`).MatchString(links) {
		t.Errorf("rc2.d link gone after dpkg -r (only purge removes it):\n%s", links)
	}
	in(3, "service", "zend", "status")
	in(0, "service", "zend", "stop")
	// dpkg --purge: the script and every link are gone.
	in(0, "dpkg", "--purge", "zend")
	if out, code := c.exec("sh", "-c", "ls /etc/init.d/zend /etc/rc?.d/*zend"); code == 0 {
		t.Errorf("left after dpkg --purge:\n%s", out)
	}
}
