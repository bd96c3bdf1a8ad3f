package main_test

// The Debian package under a real systemd: a Debian bookworm tree booted
// with systemd-nspawn (no systemd runs as PID 1 on these machines, and
// booting one by other means on the host would take over its cgroups).

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

// rootfs is the cached bookworm tree; containers boot it with
// --volatile=overlay, so it is never changed.
const rootfs = "/var/tmp/zend-ci/bookworm"

// ensureRootfs builds the tree with mmdebstrap once (about 15 s).
func ensureRootfs(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(rootfs, "usr/lib/systemd/systemd")); err == nil {
		return
	}
	mm := tool(t, "mmdebstrap", "/usr/bin/mmdebstrap")
	tmp := rootfs + ".tmp"
	os.RemoveAll(tmp)
	os.MkdirAll(filepath.Dir(rootfs), 0o755)
	cmd := exec.Command(mm, "--variant=minbase", "--include=systemd,systemd-sysv,dbus,procps", "bookworm", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, rootfs); err != nil {
		t.Fatal(err)
	}
}

// buildDeb builds the package with the shipped script.
func buildDeb(t *testing.T) string {
	t.Helper()
	tool(t, "dpkg-deb", "/usr/bin/dpkg-deb")
	out := t.TempDir()
	cmd := exec.Command("../../packaging/deb/build.sh", out, "0.2.0")
	cmd.Env = cleanEnv()
	b, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("build.sh: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(b))
}

// container is a booted systemd.
type container struct {
	t      *testing.T
	nspawn *proc
	leader int
}

// bootContainer boots the tree with the given bind mounts (HOST:GUEST,
// read-only) and waits until systemd is up.
func bootContainer(t *testing.T, binds ...string) *container {
	t.Helper()
	nspawn := tool(t, "systemd-nspawn", "/usr/bin/systemd-nspawn")
	tool(t, "nsenter", "/usr/bin/nsenter")
	ensureRootfs(t)
	args := []string{"-D", rootfs, "--volatile=overlay", "-b", "--register=no", "--keep-unit",
		"--machine=zendci" + strconv.Itoa(os.Getpid()%100000), "--console=read-only"}
	for _, b := range binds {
		args = append(args, "--bind-ro="+b)
	}
	c := &container{t: t, nspawn: start(t, nspawn, nil, args...)}
	t.Cleanup(func() {
		c.nspawn.cmd.Process.Signal(syscall.SIGTERM) // systemd powers off
		select {
		case <-c.nspawn.done:
		case <-time.After(30 * time.Second):
			c.nspawn.cmd.Process.Kill()
			<-c.nspawn.done
		}
	})
	for end := time.Now().Add(30 * time.Second); c.leader == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no systemd in the container; nspawn:\n%s", c.nspawn.log())
		}
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(c.nspawn.cmd.Process.Pid), "-x", "systemd").Output()
		c.leader, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	}
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := c.exec("systemctl", "is-system-running")
		if strings.Contains(out, "running") || strings.Contains(out, "degraded") {
			return c
		}
		if time.Now().After(end) {
			t.Fatalf("container's systemd not up: %s; nspawn:\n%s", out, c.nspawn.log())
		}
	}
}

// exec runs a command in the container and returns its output and code.
func (c *container) exec(args ...string) (string, int) {
	c.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--target", strconv.Itoa(c.leader), "--all"}, args...)...)
	out, errout, code := runCmd(c.t, cmd)
	return out + errout, code
}

// must runs a command that must succeed.
func (c *container) must(args ...string) string {
	c.t.Helper()
	out, code := c.exec(args...)
	if code != 0 {
		journal, _ := c.exec("journalctl", "--no-pager", "-n", "60")
		c.t.Fatalf("%v: exit %d\n%s\njournal:\n%s", args, code, out, journal)
	}
	return strings.TrimSpace(out)
}

// sh runs a shell line in the container.
func (c *container) sh(line string) string {
	c.t.Helper()
	return c.must("sh", "-c", line)
}

// mainPID returns a unit's MainPID (in the container's pid namespace).
func (c *container) mainPID(unit string) string {
	c.t.Helper()
	return c.must("systemctl", "show", "-p", "MainPID", "--value", unit)
}

// waitActive waits until the unit is active with a MainPID other than not.
func (c *container) waitActive(unit, not string) string {
	c.t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if out, _ := c.exec("systemctl", "is-active", unit); strings.TrimSpace(out) == "active" {
			if pid := c.mainPID(unit); pid != "0" && pid != not {
				return pid
			}
		}
	}
	st, _ := c.exec("systemctl", "status", "--no-pager", unit)
	c.t.Fatalf("%s not active (with a new MainPID):\n%s", unit, st)
	return ""
}

func TestDebianPackageUnderSystemd(t *testing.T) {
	needSystem(t, "the Debian package installed and run under systemd in a container (mmdebstrap, systemd-nspawn; about 4 minutes)")
	deb := buildDeb(t)
	port, port2 := freePort(t), freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	seed := shared(t)
	// The administrator's /etc/zend.toml (kept by dpkg --force-confold):
	// the packaged sample on a free port.
	sample, _ := os.ReadFile("../../etc/zend.toml")
	conf := strings.Replace(string(sample), `listen = ["127.0.0.1:1060"]`, fmt.Sprintf("listen = [%q]", addr), 1)
	conf = strings.Replace(conf, `user = ""`, `user = "zend"`, 1)
	conf = strings.Replace(conf, `group = ""`, `group = "zend"`, 1)
	os.WriteFile(filepath.Join(seed, "zend.toml"), []byte(conf), 0o644)
	os.WriteFile(filepath.Join(seed, "socket.conf"), []byte(fmt.Sprintf("[Socket]\nListenStream=\nListenStream=%s\n", addr)), 0o644)
	os.WriteFile(filepath.Join(seed, "inetd.conf"), []byte(fmt.Sprintf("[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n", port2)), 0o644)

	c := bootContainer(t, filepath.Dir(deb)+":/mnt/deb", seed+":/mnt/seed")
	t.Cleanup(func() {
		if t.Failed() {
			j, _ := c.exec("journalctl", "--no-pager", "-n", "100")
			t.Logf("container journal:\n%s", j)
		}
	})
	c.sh("cp /mnt/seed/zend.toml /etc/zend.toml")
	c.must("dpkg", "-i", "--force-confold", "/mnt/deb/"+filepath.Base(deb))

	// Installed, enabled and started by postinst.
	if en, _ := c.exec("systemctl", "is-enabled", "zend.service"); strings.TrimSpace(en) != "enabled" {
		t.Errorf("zend.service is %q after install, want enabled", en)
	}
	pid := c.waitActive("zend.service", "")
	waitDial(t, addr)
	client(t, addr)
	if got := c.sh("cat /run/zend/zend.pid"); got != pid {
		t.Errorf("MainPID %s, pidfile %s", pid, got)
	}
	if uid := c.sh("ps -o user= -p " + pid); uid != "zend" {
		t.Errorf("daemon runs as %q, want zend", uid)
	}
	if conffiles := c.must("dpkg-query", "-W", "-f=${Conffiles}", "zend"); !strings.Contains(conffiles, "/etc/zend.toml") {
		t.Errorf("/etc/zend.toml is not a conffile: %s", conffiles)
	}
	if perms := c.sh("stat -c '%U:%G %a' /var/log/zend"); perms != "zend:adm 2750" {
		t.Errorf("/var/log/zend is %s", perms)
	}
	for _, page := range []string{"man8/zend.8.gz", "man5/zend.toml.5.gz", "man8/in-zen1.8.gz", "man8/in-zen2.8.gz", "man1/zen-client.1.gz"} {
		c.must("test", "-s", "/usr/share/man/"+page)
	}

	// systemctl reload changes an answer.
	c.sh(`printf '"Now is better than never?" = "Although never is often better than right now."\n' >>/etc/zend.toml`)
	c.must("systemctl", "reload", "zend.service")
	if a := askOnce(t, addr, "Now is better than never?"); a != "Although never is often better than right now." {
		t.Errorf("after systemctl reload: %q", a)
	}
	// zend upgrade under zend.service (Type=forking, PIDFile=): the old
	// daemon writes the new pid into the pidfile before it exits, so
	// systemd follows the new main process; nothing restarts and no
	// conversation fails.
	restarts := c.must("systemctl", "show", "-p", "NRestarts", "--value", "zend.service")
	ld := startLoad(4, func() error { return askThree(addr) })
	c.must("/usr/sbin/zend", "-c", "/etc/zend.toml", "upgrade")
	upgraded := c.sh("cat /run/zend/zend.pid")
	if upgraded == pid {
		t.Fatalf("the pidfile still names %s after the upgrade", pid)
	}
	var main string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		main = c.must("systemctl", "show", "-p", "MainPID", "--value", "zend.service")
		if _, code := c.exec("test", "-e", "/proc/"+pid); main == upgraded && code != 0 {
			break
		}
	}
	asked, refused, errs := ld.halt()
	t.Logf("zend upgrade under systemd: %d conversations, %d failed %v", asked, refused, errs)
	if refused != 0 {
		t.Errorf("%d of %d conversations failed across zend upgrade", refused, asked)
	}
	if main != upgraded {
		t.Errorf("systemd's MainPID is %s, the pidfile names %s", main, upgraded)
	}
	if st := c.must("systemctl", "show", "-p", "ActiveState", "--value", "zend.service"); st != "active" {
		t.Errorf("zend.service is %s after the upgrade", st)
	}
	if r := c.must("systemctl", "show", "-p", "NRestarts", "--value", "zend.service"); r != restarts {
		t.Errorf("systemd restarted zend.service during the upgrade: NRestarts %s -> %s", restarts, r)
	}
	if uid := c.sh("ps -o user= -p " + upgraded); uid != "zend" {
		t.Errorf("the upgraded daemon runs as %q, want zend", uid)
	}
	pid = upgraded

	// kill -9: Restart=on-failure brings it back.
	c.must("kill", "-9", pid)
	pid2 := c.waitActive("zend.service", pid)
	waitDial(t, addr)
	client(t, addr)
	// stop: the pidfile is gone, nothing listens.
	c.must("systemctl", "stop", "zend.service")
	if out, code := c.exec("test", "-e", "/run/zend/zend.pid"); code == 0 {
		t.Errorf("pidfile left after systemctl stop %s", out)
	}
	_ = pid2

	// The notify variant.
	c.must("systemctl", "start", "zend-notify.service")
	npid := c.waitActive("zend-notify.service", "")
	waitDial(t, addr)
	client(t, addr)
	if st := c.must("systemctl", "show", "-p", "StatusText", "--value", "zend-notify.service"); !regexp.MustCompile(`^serving (uring|eventloop) on `).MatchString(st) {
		t.Errorf("StatusText %q", st)
	}
	c.sh(`sed -i 's/right now\./right now!/; s/"Now is better than never?" = .*/"Now is better than never?" = "Sometimes."/' /etc/zend.toml`)
	c.must("systemctl", "reload", "zend-notify.service")
	if a := askOnce(t, addr, "Now is better than never?"); a != "Sometimes." {
		t.Errorf("after reloading the notify unit: %q", a)
	}
	c.must("kill", "-9", npid)
	c.waitActive("zend-notify.service", npid)
	waitDial(t, addr)
	client(t, addr)
	c.must("systemctl", "stop", "zend-notify.service")

	// Socket activation: systemd holds the port; restarting the service
	// refuses no connection.
	c.sh("mkdir -p /etc/systemd/system/zend.socket.d /etc/systemd/system/zend-inetd.socket.d && cp /mnt/seed/socket.conf /etc/systemd/system/zend.socket.d/port.conf && cp /mnt/seed/inetd.conf /etc/systemd/system/zend-inetd.socket.d/port.conf && systemctl daemon-reload")
	c.must("systemctl", "start", "zend.socket")
	client(t, addr) // activates zend.service
	c.waitActive("zend.service", "")
	ld = startLoad(4, func() error { return askOnceErr(addr, "Simple is better than?") })
	ld.waitMore(t, 20)
	c.must("systemctl", "restart", "zend.service")
	c.waitActive("zend.service", "")
	ld.waitMore(t, 20)
	asked, refused, _ = ld.halt()
	if refused != 0 {
		t.Errorf("%d of %d conversations failed across a restart with socket activation", refused, asked)
	}
	t.Logf("socket activation: %d conversations across systemctl restart, %d failed", asked, refused)
	c.must("systemctl", "stop", "zend.service", "zend.socket")

	// Accept=yes: one in-zen1 per connection.
	c.must("systemctl", "start", "zend-inetd.socket")
	client(t, fmt.Sprintf("127.0.0.1:%d", port2))
	c.must("systemctl", "stop", "zend-inetd.socket")

	// remove keeps the configuration; purge removes it and the logs.
	c.must("dpkg", "-r", "zend")
	c.must("test", "-e", "/etc/zend.toml")
	if _, code := c.exec("test", "-e", "/usr/sbin/zend"); code == 0 {
		t.Error("binary left after dpkg -r")
	}
	c.must("dpkg", "--purge", "zend")
	for _, f := range []string{"/etc/zend.toml", "/var/log/zend"} {
		if _, code := c.exec("test", "-e", f); code == 0 {
			t.Errorf("%s left after dpkg --purge", f)
		}
	}
}

// askOnceErr asks one question on a new connection.
func askOnceErr(addr, q string) error {
	c, err := netDial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(q)); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(string(buf[:n]), ".") {
		return fmt.Errorf("partial answer %q", buf[:n])
	}
	return nil
}

// TestDebLintian runs lintian on the package: no error or warning may
// stay unexplained (explained ones are in packaging/deb/lintian-overrides).
func TestDebLintian(t *testing.T) {
	needSystem(t, "lintian on the Debian package built from this tree")
	lintian := tool(t, "lintian", "/usr/bin/lintian")
	deb := buildDeb(t)
	cmd := exec.Command(lintian, "--tag-display-limit", "0", deb)
	// lintian leaves a file in its TMPDIR (mldbm-elf-*): give it one the
	// test removes.
	cmd.Env = append(cleanEnv(), "TMPDIR="+t.TempDir())
	out, errout, _ := runCmd(t, cmd)
	for _, line := range strings.Split(out+errout, "\n") {
		// The README says: no error or warning (seen: a warning while it
		// said so).
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			t.Errorf("lintian: %s", line)
		}
	}
	t.Logf("lintian:\n%s%s", out, errout)
}
