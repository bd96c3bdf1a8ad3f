package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpgradeUnderLoad replaces a running daemon with the binary on disk
// while clients keep asking: no refused connection, no lost answer. A
// broken binary leaves the old daemon serving and says why.
func TestUpgradeUnderLoad(t *testing.T) {
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			d := newDaemonEnv(t, "[server]\nengine = \""+engine+"\"\n")
			// The daemon runs from a copy of the binary, which the test
			// replaces as a package upgrade would.
			exe := filepath.Join(d.dir, "zend")
			copyFile(t, filepath.Join(bin, "zend"), exe)
			run := d.runAs(t, exe)
			if _, errout, code := run("start"); code != 0 {
				t.Fatalf("start: %s", errout)
			}
			pid1 := d.pid(t)

			ld := startLoad(6, func() error { return askThree(d.addr) })
			ld.waitMore(t, 30)

			// A broken binary: the upgrade fails, the old daemon serves on.
			copyFile(t, filepath.Join(bin, "zend"), exe+".good")
			os.WriteFile(exe+".broken.src", []byte("#!/bin/sh\necho this build is broken >&2\nexit 3\n"), 0o644)
			copyFile(t, exe+".broken.src", exe+".broken")
			os.Rename(exe+".broken", exe)
			_, errout, code := run("upgrade")
			if code != 1 || !strings.Contains(errout, "this build is broken") || !strings.Contains(errout, fmt.Sprintf("pid %d keeps serving", pid1)) {
				t.Errorf("broken upgrade: exit %d %q", code, errout)
			}
			if d.pid(t) != pid1 {
				t.Fatal("pidfile changed after a failed upgrade")
			}

			// The real new binary: handed over under load.
			os.Rename(exe+".good", exe)
			out, errout, code := run("upgrade")
			if code != 0 {
				t.Fatalf("upgrade: exit %d %s %s\nlog:\n%s", code, out, errout, d.readLog())
			}
			pid2 := d.pid(t)
			if pid2 == pid1 {
				t.Fatal("pid unchanged after upgrade")
			}
			ld.waitMore(t, 30) // served by the new daemon
			asked, failed, errs := ld.halt()
			t.Logf("%s: %d conversations across a failed and a successful upgrade, %d failed %v", engine, asked, failed, errs)
			if failed != 0 {
				t.Errorf("%d of %d conversations failed during the upgrade", failed, asked)
			}
			// The old daemon drained and exited; the new one answers status.
			for end := time.Now().Add(15 * time.Second); time.Now().Before(end) && procStat(pid1) != nil && procStat(pid1)[0] != "Z"; {
				time.Sleep(50 * time.Millisecond)
			}
			if st := procStat(pid1); st != nil && st[0] != "Z" {
				t.Error("old daemon still running")
			}
			if out, _, code := run("status"); code != 0 || !strings.Contains(out, fmt.Sprintf("pid %d", pid2)) {
				t.Errorf("status after upgrade: %d %s", code, out)
			}
			client(t, d.addr)
			// The new daemon's sockets are still server.listen's: a
			// reload adds and removes addresses as before the upgrade.
			second := freeAddr(t)
			text, _ := os.ReadFile(d.cfg)
			os.WriteFile(d.cfg, []byte(strings.Replace(string(text), fmt.Sprintf("listen = [%q]", d.addr), fmt.Sprintf("listen = [%q, %q]", d.addr, second), 1)), 0o644)
			if _, errout, code := run("reload"); code != 0 {
				t.Fatalf("reload after upgrade: %s", errout)
			}
			if got := askOnce(t, second, "Simple is better than?"); got != "Complex." {
				t.Errorf("address added after the upgrade: %q", got)
			}
			if out, _, _ := run("status"); strings.Contains(out, "needs restart") {
				t.Errorf("a listen change after an upgrade waits for a restart:\n%s", out)
			}
			if _, _, code := run("stop"); code != 0 {
				t.Error("stop after upgrade")
			}
		})
	}
}

// runAs returns a runner of "zend -c CFG args..." for d: start runs
// daemonBin (the path the daemon is started as, which an upgrade runs
// again), every other command the test's binary.
func (d *daemonEnv) runAs(t *testing.T, daemonBin string) func(args ...string) (string, string, int) {
	return func(args ...string) (string, string, int) {
		prog := filepath.Join(bin, "zend")
		if args[0] == "start" {
			prog = daemonBin
		}
		cmd := exec.Command(prog, append([]string{"-c", d.cfg}, args...)...)
		cmd.Env = cleanEnv()
		return runCmd(t, cmd)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	// cp writes the copy, not this process: a child this process forks
	// meanwhile (the load's, a daemon's) would inherit a descriptor open
	// for writing on the new executable until it execs, and exec'ing the
	// copy then fails with ETXTBSY (golang/go#22315; seen under load as
	// "fork: write |1: broken pipe" from zend start).
	if out, err := exec.Command("cp", from, to+".tmp").CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.Chmod(to+".tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}
