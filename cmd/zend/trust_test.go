package main_test

// Tests of the boundary between root and the daemon's user (README,
// Security, "Who owns what"): a throwaway unprivileged user, created here,
// attacks the real daemon started as root, acting through setpriv.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// attacker is a throwaway unprivileged user.
type attacker struct {
	name     string
	uid, gid int
}

// newAttacker creates a user with no home and no shell, removed (with every
// process it still runs) when the test ends. Creating users changes the
// machine: a system test.
func newAttacker(t *testing.T) *attacker {
	t.Helper()
	needSystem(t, "attacks by a throwaway unprivileged user (useradd) on the daemon started as root")
	b := make([]byte, 4)
	rand.Read(b)
	name := "zt" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{name: name}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	t.Cleanup(func() {
		a.killAll()
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", name).Run()
	})
	return a
}

// killAll kills the user's processes, by pid.
func (a *attacker) killAll() {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		pids := a.pids()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// pids lists the live processes running as the user.
func (a *attacker) pids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st := procStat(pid); st == nil || st[0] == "Z" {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name(), &st) == nil && int(st.Uid) == a.uid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cmd returns a command that runs as the user.
func (a *attacker) cmd(args ...string) *exec.Cmd {
	return exec.Command("setpriv", append([]string{"--reuid", a.name, "--regid", a.name, "--clear-groups", "--"}, args...)...)
}

// sh runs a shell line as the user and returns its output and exit code.
func (a *attacker) sh(t *testing.T, line string) (string, int) {
	t.Helper()
	out, errout, code := runCmd(t, a.cmd("/bin/sh", "-c", line))
	return out + errout, code
}

// openDirs lets other users reach dir: the test's temporary folders are
// private to root.
func openDirs(dir string) {
	for ; dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
}

// newUserDaemonEnv is a daemon environment whose daemon drops to a.
func newUserDaemonEnv(t *testing.T, a *attacker, extra string) *daemonEnv {
	t.Helper()
	extra = fmt.Sprintf("[daemon]\nuser = %q\n", a.name) + extra
	d := newDaemonEnv(t, extra)
	openDirs(d.dir)
	return d
}

// rootOnly creates a file only root can read and write, and returns its
// path and content.
func rootOnly(t *testing.T, dir, name string) (string, []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	content := []byte("root's secret\n")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, content
}

// fdTargets returns where the descriptors of pid point.
func fdTargets(pid int) []string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// TestRootFollowsNoUserLink (finding 2): the daemon's user replaces the log
// file, and tries to replace the pidfile, with links to a root-only file
// and with dangling links; the next start as root (with the pool engine,
// whose warning is the first log line) must neither write through them nor
// create their targets.
func TestRootFollowsNoUserLink(t *testing.T) {
	a := newAttacker(t)
	for _, dangling := range []bool{false, true} {
		t.Run(fmt.Sprintf("dangling=%v", dangling), func(t *testing.T) {
			d := newUserDaemonEnv(t, a, "[server]\nengine = \"pool\"\n")
			d.start(t)
			if _, _, code := d.zend(t, nil, "stop"); code != 0 {
				t.Fatal("stop")
			}
			secret, content := rootOnly(t, d.dir, "secret")
			target := secret
			if dangling {
				target = filepath.Join(d.dir, "created-by-root")
			}
			// The log folder is the user's: the link goes in.
			if out, code := a.sh(t, fmt.Sprintf("ln -sf %s %s", target, d.log)); code != 0 {
				t.Fatalf("the user cannot replace its own log: %s", out)
			}
			// The pidfile folder is root's: no link goes in.
			if out, code := a.sh(t, fmt.Sprintf("ln -sf %s %s", target, d.pidfile)); code == 0 {
				t.Errorf("the user could plant a link at the pidfile: %s", out)
			}
			_, errout, code := d.zend(t, nil, "start")
			if code == 0 {
				for _, l := range fdTargets(d.pid(t)) {
					if l == secret || l == target {
						t.Errorf("the daemon holds %s open", l)
					}
				}
				d.zend(t, nil, "stop")
			} else {
				if !strings.Contains(errout, d.log) || !strings.Contains(errout, "permission denied") {
					t.Errorf("start refused without naming the log and why: %q", errout)
				}
				// A failed start leaves nothing behind.
				if _, err := os.Stat(d.pidfile); !os.IsNotExist(err) {
					t.Errorf("pidfile left after a failed start: %v", err)
				}
				if pids := processesWith(d.cfg); len(pids) > 0 {
					t.Errorf("processes left after a failed start: %v", pids)
				}
			}
			if got, _ := os.ReadFile(secret); !bytes.Equal(got, content) {
				t.Errorf("root's file changed: %q", got)
			}
			if _, err := os.Lstat(filepath.Join(d.dir, "created-by-root")); err == nil {
				t.Error("root created the target of a dangling link")
			}
		})
	}
}

// TestSignalsReachOnlyZend (finding 3): the pidfile names another process
// (a root sleep); stop, reload and upgrade must refuse to signal it, exit
// 1 saying why, and leave both processes alone. The pidfile is the
// daemon's user's (it rewrites it in an upgrade), so systemd, which trusts
// a pidfile that is not root's only for a pid inside the service, cannot be
// made to adopt another process through it either.
func TestSignalsReachOnlyZend(t *testing.T) {
	a := newAttacker(t)
	d := newUserDaemonEnv(t, a, "")
	pid := d.start(t)
	var st syscall.Stat_t
	if err := syscall.Stat(d.pidfile, &st); err != nil || int(st.Uid) != a.uid {
		t.Fatalf("pidfile owner uid %d (%v), want the daemon's user %d", st.Uid, err, a.uid)
	}
	sleep := exec.Command("sleep", "300")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	// What a compromised pidfile would say.
	if err := os.WriteFile(d.pidfile, []byte(strconv.Itoa(sleep.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"stop", "reload", "upgrade"} {
		_, errout, code := d.zend(t, nil, cmd)
		if code != 1 || !strings.Contains(errout, "cannot prove") {
			t.Errorf("%s: exit %d %q, want 1 and why", cmd, code, errout)
		}
		if st := procStat(sleep.Process.Pid); st == nil || st[0] == "Z" {
			t.Fatalf("%s signalled the unrelated process", cmd)
		}
	}
	if st := procStat(pid); st == nil || st[0] == "Z" {
		t.Fatal("the daemon is gone")
	}
	// status names the daemon that answers, and what is wrong.
	if out, _, code := d.zend(t, nil, "status"); code != 0 || !strings.Contains(out, fmt.Sprintf("zend is running (pid %d)", pid)) || !strings.Contains(out, "which is not the daemon") {
		t.Errorf("status with a forged pidfile: exit %d\n%s", code, out)
	}
	if got := askOnce(t, d.addr, "Beautiful is better than?"); got != "Ugly." {
		t.Fatalf("answer %q", got)
	}
	os.WriteFile(d.pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644)
	if _, errout, code := d.zend(t, nil, "stop"); code != 0 {
		t.Fatalf("stop with the true pid: %s", errout)
	}
}

// TestNoOneElseHoldsTheLock (finding 4): another user holds a shared lock
// on the world-readable pidfile and tries the lock file; after a crash,
// status says dead and start succeeds.
func TestNoOneElseHoldsTheLock(t *testing.T) {
	a := newAttacker(t)
	d := newUserDaemonEnv(t, a, "")
	pid := d.start(t)
	lock := strings.TrimSuffix(d.pidfile, ".pid") + ".lock"
	if out, code := a.sh(t, "exec 3<"+lock); code == 0 {
		t.Fatalf("another user could open the lock: %s", out)
	}
	holder := a.cmd("flock", "-s", d.pidfile, "sleep", "300")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	syscall.Kill(pid, syscall.SIGKILL)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && procStat(pid) != nil && procStat(pid)[0] != "Z"; {
		time.Sleep(10 * time.Millisecond)
	}
	if out, _, code := d.zend(t, nil, "status"); code != 1 || !strings.Contains(out, "dead") {
		t.Fatalf("status after a crash: exit %d %q, want 1 (dead)", code, out)
	}
	d.start(t)
	if got := askOnce(t, d.addr, "Simple is better than?"); got != "Complex." {
		t.Fatalf("answer %q", got)
	}
}

// TestRunDropsPrivileges (finding 5): "zend run" as root binds, then drops
// to daemon.user exactly as start does, and says so; no new privileges can
// be gained and the capability bounding set is empty, on every thread.
func TestRunDropsPrivileges(t *testing.T) {
	a := newAttacker(t)
	dir := t.TempDir()
	openDirs(dir)
	cfg := writeFile(t, dir, "zend.toml", fmt.Sprintf("[daemon]\nuser = %q\n", a.name))
	// The static zend, as shipped: every thread is checked below.
	p := start(t, filepath.Join(staticBin, "zend"), nil, "-c", cfg, "-listen", "127.0.0.1:0", "run")
	addr := p.waitLog(t, `msg=listening addr=(\S+)`)[1]
	p.waitLog(t, `msg="dropped privileges" user=`+a.name)
	client(t, addr)
	checkDropped(t, p.cmd.Process.Pid, a.uid)
}

// checkDropped checks every thread of pid: user uid in every field, no
// new privileges, an empty bounding set, no capabilities.
func checkDropped(t *testing.T, pid, uid int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads: %v", err)
	}
	u := strconv.Itoa(uid)
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue
		}
		fields := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		if got := strings.Fields(fields["Uid"]); len(got) != 4 || got[0] != u || got[1] != u || got[2] != u || got[3] != u {
			t.Errorf("thread %s: Uid %q, want %s", task.Name(), fields["Uid"], u)
		}
		for k, want := range map[string]string{"NoNewPrivs": "1", "CapBnd": "0000000000000000", "CapEff": "0000000000000000", "CapPrm": "0000000000000000"} {
			if fields[k] != want {
				t.Errorf("thread %s: %s %q, want %s", task.Name(), k, fields[k], want)
			}
		}
	}
}

// TestUpgradeWithDaemonUser (findings 1 and 10): a daemon that dropped to
// its user upgrades under load, started through a link that the
// "package upgrade" then points at a new binary: the new binary serves,
// the pidfile names it, nothing fails; a broken binary leaves the old
// daemon serving and named by the pidfile.
func TestUpgradeWithDaemonUser(t *testing.T) {
	a := newAttacker(t)
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			d := newUserDaemonEnv(t, a, "[server]\nengine = \""+engine+"\"\n")
			// /usr/sbin/zend -> zend-v1, as an operator installs it.
			v1, v2, link := filepath.Join(d.dir, "zend-v1"), filepath.Join(d.dir, "zend-v2"), filepath.Join(d.dir, "zend")
			// The static zend, as shipped: every thread is checked below.
			copyFile(t, filepath.Join(staticBin, "zend"), v1)
			os.Chmod(v1, 0o711) // execute-only for the daemon's user
			if err := os.Symlink("zend-v1", link); err != nil {
				t.Fatal(err)
			}
			run := d.runAs(t, link)
			if _, errout, code := run("start"); code != 0 {
				t.Fatalf("start: %s", errout)
			}
			pid1 := d.pid(t)
			checkDropped(t, pid1, a.uid)
			ld := startLoad(6, func() error { return askThree(d.addr) })

			// A binary the daemon's user can read: refused, the old daemon
			// serves on.
			os.WriteFile(v2+".src", []byte("#!/bin/sh\necho this build is broken >&2\nexit 3\n"), 0o644)
			copyFile(t, v2+".src", v2)
			os.Remove(link)
			os.Symlink("zend-v2", link)
			_, errout, code := run("upgrade")
			if code != 1 || !strings.Contains(errout, "can be read by uid") || !strings.Contains(errout, fmt.Sprintf("pid %d keeps serving", pid1)) {
				t.Errorf("upgrade to a binary the daemon's user can read: exit %d %q", code, errout)
			}
			// A broken binary: the old daemon serves on, and is named.
			os.Chmod(v2, 0o711)
			_, errout, code = run("upgrade")
			if code != 1 || !strings.Contains(errout, fmt.Sprintf("pid %d keeps serving", pid1)) {
				t.Errorf("broken upgrade: exit %d %q", code, errout)
			}
			if d.pid(t) != pid1 {
				t.Fatal("pidfile changed after a failed upgrade")
			}

			// The real v2, through the link.
			copyFile(t, filepath.Join(staticBin, "zend"), v2)
			os.Chmod(v2, 0o711)
			out, errout, code := run("upgrade")
			if code != 0 {
				t.Fatalf("upgrade: exit %d %s %s\nlog:\n%s", code, out, errout, d.readLog())
			}
			pid2 := d.pid(t)
			if pid2 == pid1 {
				t.Fatal("pid unchanged after upgrade")
			}
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid2)); exe != v2 {
				t.Errorf("the new daemon runs %s, want %s (the link's new target)", exe, v2)
			}
			checkDropped(t, pid2, a.uid)
			// Another process of the daemon's user cannot reach the new
			// daemon's descriptors (the lock, the pidfile, the sockets).
			if out, code := a.sh(t, fmt.Sprintf("ls /proc/%d/fd", pid2)); code == 0 {
				t.Errorf("the daemon's user can list the upgraded daemon's descriptors:\n%s", out)
			}
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && procStat(pid1) != nil && procStat(pid1)[0] != "Z"; {
				time.Sleep(20 * time.Millisecond)
			}
			if st := procStat(pid1); st != nil && st[0] != "Z" {
				t.Error("old daemon still running")
			}
			asked, failed, errs := ld.halt()
			t.Logf("%s: %d conversations across a failed and a successful upgrade, %d failed %v", engine, asked, failed, errs)
			if failed != 0 {
				t.Errorf("%d of %d conversations failed", failed, asked)
			}
			out, _, code = run("status")
			if code != 0 || !strings.Contains(out, fmt.Sprintf("zend is running (pid %d)", pid2)) || !strings.Contains(out, "last upgrade: ok") {
				t.Errorf("status after upgrade: %d %s", code, out)
			}
			// A second upgrade from the upgraded daemon works too.
			if _, errout, code := run("upgrade"); code != 0 {
				t.Fatalf("second upgrade: %s\nlog:\n%s", errout, d.readLog())
			}
			pid3 := d.pid(t)
			if _, errout, code := run("stop"); code != 0 {
				t.Fatalf("stop: %s", errout)
			}
			if st := procStat(pid3); st != nil && st[0] != "Z" {
				t.Error("daemon running after stop")
			}
			if _, err := os.Stat(d.pidfile); !os.IsNotExist(err) {
				t.Error("pidfile left after stop")
			}
		})
	}
}

// TestMissingConfigFile (finding 8): -c naming a file that does not exist,
// or one that does not parse, is an error for every command while a daemon
// runs: no command may guess the default pidfile and say nothing runs.
func TestMissingConfigFile(t *testing.T) {
	d := newDaemonEnv(t, "")
	pid := d.start(t)
	missing := filepath.Join(d.dir, "typo.toml")
	text, _ := os.ReadFile(d.cfg)
	broken := writeFile(t, d.dir, "broken.toml", string(text)+"this is not toml [[[\n")
	for _, cfg := range []string{missing, broken} {
		for cmd, want := range map[string]int{"stop": 1, "status": 4, "reload": 1, "upgrade": 1, "start": 1, "restart": 1, "check": 1} {
			_, errout, code := runBin(t, "zend", nil, "-c", cfg, cmd)
			if code != want || !strings.Contains(errout, cfg) {
				t.Errorf("%s with %s: exit %d %q, want %d naming the file", cmd, filepath.Base(cfg), code, errout, want)
			}
		}
	}
	if st := procStat(pid); st == nil || st[0] == "Z" {
		t.Fatal("the daemon was stopped")
	}
	if got := askOnce(t, d.addr, "Beautiful is better than?"); got != "Ugly." {
		t.Fatalf("answer %q", got)
	}
}

// blocker puts a file where the test's configuration wants a folder.
func blocker(t *testing.T, d *daemonEnv) {
	os.WriteFile(filepath.Join(d.dir, "blocker"), nil, 0o644)
}

// folder returns a setup that makes d.dir/name with mode (the umask
// aside), reachable by other users.
func folder(name string, mode os.FileMode) func(t *testing.T, d *daemonEnv) {
	return func(t *testing.T, d *daemonEnv) {
		os.Mkdir(filepath.Join(d.dir, name), 0o700)
		os.Chmod(filepath.Join(d.dir, name), mode)
		openDirs(d.dir)
	}
}

// TestCheckWhatStartNeeds (finding 9): what start refuses, check refuses.
func TestCheckWhatStartNeeds(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		setup func(t *testing.T, d *daemonEnv)
		want  string
	}{
		// A user that does not exist.
		{"unknown user", "[daemon]\nuser = \"no-such-user-zend\"\n", nil, `daemon.user "no-such-user-zend": no such user`},
		// A pidfile folder that cannot be made.
		{"pidfile folder", "[daemon]\npidfile = \"blocker/zend.pid\"\n", blocker, "blocker"},
		// A pidfile folder others can write.
		{"pidfile folder others write", "[daemon]\npidfile = \"open/zend.pid\"\n", folder("open", 0o777), "lets group or others"},
		// A log folder that cannot be made.
		{"log folder", "[log]\nfile = \"blocker/zend.log\"\n", blocker, "blocker"},
		// daemon.user = "root" drops nothing: root's log rules hold, and a
		// folder others can write is refused.
		{"root as daemon.user", "[daemon]\nuser = \"root\"\n[log]\nfile = \"open/zend.log\"\n", folder("open", 0o777), "lets group or others"},
		// A log folder every user can create files in (/tmp-like), with
		// a user to drop to: another user could plant the log file.
		{"sticky log folder", "[daemon]\nuser = \"nobody\"\n[log]\nfile = \"tmp/zend.log\"\n", folder("tmp", os.ModeSticky|0o777), "every user can create files in it"},
		// A configuration file daemon.user cannot read: every reload and
		// upgrade would fail.
		{"config unreadable by the user", "[daemon]\nuser = \"nobody\"\n", func(t *testing.T, d *daemonEnv) {
			os.Chmod(d.cfg, 0o600)
		}, "cannot be read by nobody"},
		// A configuration file daemon.user can write: it could name any
		// pidfile for root to remove, or no user at all.
		{"config writable by the user", "[daemon]\nuser = \"nobody\"\n", func(t *testing.T, d *daemonEnv) {
			os.Chown(d.cfg, 65534, 65534)
			openDirs(d.dir)
		}, "is owned by uid 65534, not root"},
		// A log file that is a folder.
		{"log file is a folder", "", func(t *testing.T, d *daemonEnv) {
			os.MkdirAll(d.log, 0o755)
		}, "is not a regular file"},
		// A listen address that does not resolve.
		{"listen", "[server]\nlisten = [\"no-such-host.invalid:1060\"]\n", nil, "no-such-host.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDaemonEnv(t, tt.extra)
			if tt.setup != nil {
				tt.setup(t, d)
			}
			_, checkErr, checkCode := d.zend(t, nil, "check", "-q")
			_, startErr, startCode := d.zend(t, nil, "start")
			if startCode != 1 {
				t.Fatalf("start: exit %d %q, want 1", startCode, startErr)
			}
			if checkCode != 1 || !strings.Contains(checkErr, tt.want) {
				t.Fatalf("check: exit %d %q, want 1 and %q (start said %q)", checkCode, checkErr, tt.want, startErr)
			}
		})
	}
}

// TestReloadKeepsRestartOnlyKeys (finding 11): keys that need a restart
// keep their running value, are reported at every reload until a restart,
// and status shows what is in force; reloads that change the rotation
// leak no goroutine.
func TestReloadKeepsRestartOnlyKeys(t *testing.T) {
	maddr := freeAddr(t)
	base := fmt.Sprintf("[server]\nengine = \"goroutine\"\n[metrics]\nlisten = %q\n", maddr)
	d := newDaemonEnv(t, base)
	d.start(t)
	goroutines := func() int {
		t.Helper()
		c, err := net.DialTimeout("tcp", maddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
		var b bytes.Buffer
		b.ReadFrom(c)
		for _, line := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatalf("no go_goroutines in %q", b.String())
		return 0
	}
	before := goroutines()
	for i := 0; i < 2; i++ {
		d.write(t, base+fmt.Sprintf("[server]\nengine = \"eventloop\"\n[log]\nmax_size_mb = %d\n[answers]\n\"Readability counts?\" = \"Yes %d.\"\n", 50+i, i))
		out, errout, code := d.zend(t, nil, "reload")
		if code != 0 {
			t.Fatalf("reload: %s", errout)
		}
		if !strings.Contains(out, "needs restart, running value kept: server.engine: goroutine -> eventloop") {
			t.Errorf("reload does not say what waits for a restart:\n%s", out)
		}
		if got := askOnce(t, d.addr, "Readability counts?"); got != fmt.Sprintf("Yes %d.", i) {
			t.Fatalf("reloadable key not applied: %q", got)
		}
	}
	// Each reload said it again.
	if n := strings.Count(d.readLog(), `change="server.engine: goroutine -> eventloop"`); n != 2 {
		t.Errorf("server.engine reported %d times, want at every reload (2):\n%s", n, d.readLog())
	}
	out, _, _ := d.zend(t, nil, "status")
	if !strings.Contains(out, "engine:      goroutine") || !strings.Contains(out, "needs restart: server.engine: goroutine -> eventloop") || !strings.Contains(out, "needs restart: log.max_size_mb") {
		t.Errorf("status does not show what is in force and what waits:\n%s", out)
	}
	for i := 0; i < 60; i++ {
		d.write(t, base+fmt.Sprintf("[log]\nmax_size_mb = %d\n", 10+i%7))
		if _, errout, code := d.zend(t, nil, "reload"); code != 0 {
			t.Fatalf("reload: %s", errout)
		}
	}
	if after := goroutines(); after > before+5 {
		t.Errorf("goroutines %d before 60 reloads, %d after", before, after)
	}
}

// TestUpgradeRacingStop: a daemon told to stop (or killed) while its
// upgrade is under way leaves either nothing running or a daemon the
// tools see and can stop: never one that no tool can prove.
func TestUpgradeRacingStop(t *testing.T) {
	a := newAttacker(t)
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		delay time.Duration
	}{
		// SIGTERM right after SIGUSR2: the new daemon is stopped too.
		{"term", syscall.SIGTERM, 0},
		// SIGKILL right after SIGUSR2, and a little later: a new daemon
		// that serves adopts the pidfile.
		{"kill", syscall.SIGKILL, 0},
		{"kill later", syscall.SIGKILL, 30 * time.Millisecond},
		{"kill after ready", syscall.SIGKILL, 150 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newUserDaemonEnv(t, a, "[limits]\nshutdown_timeout = \"2s\"\n")
			pid := d.start(t)
			syscall.Kill(pid, syscall.SIGUSR2)
			if tc.delay > 0 {
				time.Sleep(tc.delay) // the race under test, not synchronisation
			}
			syscall.Kill(pid, tc.sig)
			for end := time.Now().Add(15 * time.Second); time.Now().Before(end) && procStat(pid) != nil && procStat(pid)[0] != "Z"; {
				time.Sleep(10 * time.Millisecond)
			}
			// Whatever still runs must be the one the pidfile names, and
			// stop must stop it.
			var left []int
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				left = processesWith(d.cfg)
				if len(left) == 0 {
					break
				}
				if p, _ := os.ReadFile(d.pidfile); len(left) == 1 && strings.TrimSpace(string(p)) == strconv.Itoa(left[0]) {
					break
				}
			}
			if len(left) > 0 {
				out, _, code := d.zend(t, nil, "status")
				if code != 0 || !strings.Contains(out, fmt.Sprintf("zend is running (pid %d)", left[0])) {
					t.Errorf("a daemon runs (%v) that status does not see: exit %d %q", left, code, out)
				}
				if _, errout, code := d.zend(t, nil, "stop"); code != 0 {
					t.Errorf("stop: exit %d %q", code, errout)
				}
			}
			if left := processesWith(d.cfg); len(left) > 0 {
				t.Errorf("processes left: %v\nlog:\n%s", left, d.readLog())
			}
		})
	}
}

// TestHungDaemonIsNotAPanic: a daemon that does not answer on its control
// socket (stopped) makes status report what it knows and stop refuse,
// never crash.
func TestHungDaemonIsNotAPanic(t *testing.T) {
	d := newDaemonEnv(t, "")
	pid := d.start(t)
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	out, errout, code := d.zend(t, nil, "status")
	if code != 0 || strings.Contains(errout, "panic") || !strings.Contains(out, "no details") {
		t.Errorf("status of a stopped daemon: exit %d %q %q", code, out, errout)
	}
	_, errout, code = d.zend(t, nil, "stop")
	if code != 1 || strings.Contains(errout, "panic") || !strings.Contains(errout, "cannot prove") {
		t.Errorf("stop of a stopped daemon: exit %d %q", code, errout)
	}
	syscall.Kill(pid, syscall.SIGCONT)
	if _, errout, code := d.zend(t, nil, "stop"); code != 0 {
		t.Fatalf("stop: %s", errout)
	}
}

// TestFifoAtTheLog: the daemon's user puts a FIFO where the log was, or
// where it will be: the daemon neither hangs nor stops answering.
func TestFifoAtTheLog(t *testing.T) {
	a := newAttacker(t)
	d := newUserDaemonEnv(t, a, "")
	d.start(t)
	if out, code := a.sh(t, fmt.Sprintf("mv %s %s.moved && mkfifo -m 600 %s", d.log, d.log, d.log)); code != 0 {
		t.Fatalf("mkfifo: %s", out)
	}
	// Past the once-a-second check: every question is still answered.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		if got := askOnce(t, d.addr, "Beautiful is better than?"); got != "Ugly." {
			t.Fatalf("answer %q", got)
		}
	}
	if _, errout, code := d.zend(t, nil, "stop"); code != 0 {
		t.Fatalf("stop: %s", errout)
	}
	// A FIFO there before start: start fails at once, saying why.
	_, errout, code := d.zend(t, nil, "start")
	if code != 1 || !strings.Contains(errout, "not a regular file") {
		t.Errorf("start with a FIFO at the log: exit %d %q", code, errout)
	}
}

// TestUpgradeRefusesUnsafeBinary: the daemon (as its user) runs the binary
// an upgrade names with root's lock, pidfile and sockets: a binary in a
// folder other users can change is refused, and the old daemon serves on.
func TestUpgradeRefusesUnsafeBinary(t *testing.T) {
	a := newAttacker(t)
	d := newUserDaemonEnv(t, a, "")
	open := filepath.Join(d.dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	exe := filepath.Join(open, "zend")
	copyFile(t, filepath.Join(bin, "zend"), exe)
	run := d.runAs(t, exe)
	if _, errout, code := run("start"); code != 0 {
		t.Fatalf("start: %s", errout)
	}
	pid := d.pid(t)
	_, errout, code := run("upgrade")
	if code != 1 || !strings.Contains(errout, "can be changed by other users") {
		t.Errorf("upgrade from a folder others can write: exit %d %q", code, errout)
	}
	if d.pid(t) != pid {
		t.Error("the pidfile changed")
	}
	if got := askOnce(t, d.addr, "Simple is better than?"); got != "Complex." {
		t.Fatalf("answer %q", got)
	}
}

// TestUpgradeWindow: a process of the daemon's user copies the descriptors
// of every new zend process it sees (pidfd_getfd) while an upgrade starts
// one. The binary is execute-only for that user (as the package installs
// it), so the new daemon starts non-dumpable and nothing can be taken; and
// should anything be, the new daemon must not take over while another
// process holds copies of the lock, the pidfile or the control socket (the
// upgrade fails instead, and the old daemon serves on). A race: it is run
// a few times.
func TestUpgradeWindow(t *testing.T) {
	a := newAttacker(t)
	grab := filepath.Join(bin, "grab")
	if out, err := exec.Command("go", "build", "-o", grab, "./testdata/grab").CombinedOutput(); err != nil {
		t.Fatalf("build the attacker: %v %s", err, out)
	}
	took := 0
	for round := 0; round < 4; round++ {
		d := newUserDaemonEnv(t, a, "")
		exe := filepath.Join(d.dir, "zend")
		copyFile(t, filepath.Join(bin, "zend"), exe)
		os.Chmod(exe, 0o711)
		if _, errout, code := d.runAs(t, exe)("start"); code != 0 {
			t.Fatalf("start: %s", errout)
		}
		pid := d.pid(t)
		g := a.cmd(grab, "2s", strconv.Itoa(pid))
		out, err := g.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		_, errout, code := d.zend(t, nil, "upgrade")
		var held []string
		sc := bufio.NewScanner(out)
		for sc.Scan() && sc.Text() != "done" {
			if l, ok := strings.CutPrefix(sc.Text(), "held "); ok && strings.HasPrefix(l, d.dir) {
				held = append(held, l)
			}
		}
		g.Process.Kill()
		g.Wait()
		switch {
		case code == 0 && len(held) > 0:
			t.Errorf("round %d: the upgrade went through while pid %d of the daemon's user holds %v", round, g.Process.Pid, held)
		case code != 0 && len(held) == 0:
			t.Errorf("round %d: the upgrade failed with nothing taken: %s", round, errout)
		case code != 0:
			took++
			if !strings.Contains(errout, "refusing to take over") {
				t.Errorf("round %d: upgrade failed without saying why: %s", round, errout)
			}
			if got := askOnce(t, d.addr, "Simple is better than?"); got != "Complex." || d.pid(t) != pid {
				t.Errorf("round %d: the old daemon does not serve on", round)
			}
		}
		d.zend(t, nil, "stop")
	}
	if took > 0 {
		t.Errorf("the attacker took descriptors in %d of 4 upgrades from an execute-only binary (each was refused)", took)
	}
}

// TestReloadHoldsRootRule: a daemon root started takes, on reload, only a
// configuration only root can change, as start does (seen: after chmod
// g+w, zend reload said "reloaded" and the new answers were served).
func TestReloadHoldsRootRule(t *testing.T) {
	needRoot(t)
	d := newDaemonEnv(t, "[answers]\n\"Readability counts?\" = \"Yes.\"\n")
	openDirs(d.dir)
	d.start(t)
	d.write(t, "[answers]\n\"Readability counts?\" = \"Planted.\"\n")
	os.Chmod(d.cfg, 0o664) // the group may change it now
	_, errout, code := d.zend(t, nil, "reload")
	if code != 1 || !strings.Contains(errout, "can be written by group or others") {
		t.Errorf("reload of a group-writable configuration: exit %d %q; want 1, refused", code, errout)
	}
	if got := askOnce(t, d.addr, "Readability counts?"); got != "Yes." {
		t.Errorf("the refused configuration's answer is served: %q", got)
	}
	// Root's again: the reload goes through.
	os.Chmod(d.cfg, 0o644)
	if _, errout, code := d.zend(t, nil, "reload"); code != 0 {
		t.Fatalf("reload: exit %d %s", code, errout)
	}
	if got := askOnce(t, d.addr, "Readability counts?"); got != "Planted." {
		t.Errorf("after a valid reload: %q", got)
	}
}
