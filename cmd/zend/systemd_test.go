package main_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSdNotify plays systemd's part of Type=notify: a datagram socket in
// NOTIFY_SOCKET and WATCHDOG_USEC, and reads what "zend run" says.
func TestSdNotify(t *testing.T) {
	dir := shared(t)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := filepath.Join(t.TempDir(), "zend.toml") // root acts on it: only root may change it
	os.WriteFile(cfg, nil, 0o644)
	p, addr := startZend(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}, "-c", cfg, "-listen", "127.0.0.1:0")
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(what string, ok func(string) bool) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if ok(m) {
					return m
				}
			case <-timeout:
				t.Fatalf("no %s from zend within 10 s; log:\n%s", what, p.log())
			}
		}
	}
	has := func(parts ...string) func(string) bool {
		return func(m string) bool {
			for _, part := range parts {
				if !strings.Contains(m, part) {
					return false
				}
			}
			return true
		}
	}
	m := expect("READY=1", has("READY=1", "STATUS=serving uring on ["+addr+"]"))
	_ = m
	expect("watchdog ping", has("WATCHDOG=1"))
	expect("second watchdog ping", has("WATCHDOG=1"))
	p.cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1 with MONOTONIC_USEC", has("RELOADING=1", "MONOTONIC_USEC="))
	expect("READY=1 after the reload", has("READY=1", "STATUS=serving"))
	// A failed reload still says READY=1, with the reason in STATUS.
	os.WriteFile(cfg, []byte("[limits]\nmax_connections = 0\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	expect("READY=1 after a failed reload", has("READY=1", "STATUS=reload failed", "max_connections"))
	p.cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1", has("STOPPING=1", "STATUS=draining"))
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestSocketActivation hands zend a listening socket the way a .socket
// unit does (systemd-socket-activate), for "zend run" and for the
// self-daemonising "zend start", whose re-executions must keep it.
func TestSocketActivation(t *testing.T) {
	ssa := tool(t, "systemd-socket-activate", "/usr/bin/systemd-socket-activate")
	t.Run("run", func(t *testing.T) {
		addr := freeAddr(t)
		p := start(t, ssa, nil, "-l", addr, filepath.Join(bin, "zend"), "-listen", "127.0.0.1:1", "run")
		p.waitLog(t, "Listening on")
		client(t, addr) // the first connection makes it exec zend
		p.waitLog(t, `serving sockets handed over .*; server.listen is not used" addrs=`+addr)
	})
	t.Run("start", func(t *testing.T) {
		d := newDaemonEnv(t, "")
		sockAddr := freeAddr(t)
		p := start(t, ssa, nil, "-l", sockAddr, filepath.Join(bin, "zend"), "-c", d.cfg, "start")
		p.waitLog(t, "Listening on")
		client(t, sockAddr)
		if code := p.wait(t, 20*time.Second); code != 0 {
			t.Fatalf("zend start under socket activation: exit %d\n%s", code, p.log())
		}
		d.waitLog(t, `serving sockets handed over`)
		// The daemon serves the inherited socket, not server.listen.
		client(t, sockAddr)
		if c, err := net.DialTimeout("tcp", d.addr, time.Second); err == nil {
			c.Close()
			t.Error("the daemon bound server.listen although it was handed a socket")
		}
		if _, _, code := d.zend(t, nil, "stop"); code != 0 {
			t.Fatal("stop")
		}
	})
	t.Run("accept=yes is refused", func(t *testing.T) {
		addr := freeAddr(t)
		// -a: a connected socket on fd 3, as Accept=yes does.
		p := start(t, ssa, nil, "-a", "-l", addr, filepath.Join(bin, "zend"), "-listen", "127.0.0.1:1", "run")
		p.waitLog(t, "Listening on")
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			defer c.Close()
		}
		p.waitLog(t, "not a listening socket: a socket unit with Accept=yes must run in-zen1")
	})
}

// TestSystemdUnitsVerify checks the shipped units with systemd-analyze
// verify in a scratch root that has the binaries where the units name
// them: any output is a failure (unknown keys only warn).
func TestSystemdUnitsVerify(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "/usr/bin/systemd-analyze")
	root := t.TempDir()
	units := filepath.Join(root, "usr/lib/systemd/system")
	for _, d := range []string{"usr/sbin", "bin", "etc/systemd/system", "usr/lib/systemd/system"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	if out, err := exec.Command("cp", "-r", "/lib/systemd/system/.", units).CombinedOutput(); err != nil {
		t.Fatalf("copy systemd's own units: %v %s", err, out)
	}
	for _, b := range []string{"zend", "in-zen1", "in-zen2"} {
		exec.Command("cp", filepath.Join(bin, b), filepath.Join(root, "usr/sbin")).Run()
	}
	exec.Command("cp", "/bin/kill", filepath.Join(root, "bin")).Run()
	exec.Command("cp", "-L", "/bin/sh", filepath.Join(root, "bin", "sh")).Run() // zend.service's ExecStartPre
	shipped, _ := filepath.Glob("../../packaging/systemd/*")
	var names []string
	for _, u := range shipped {
		exec.Command("cp", u, units).Run()
		name := filepath.Base(u)
		if strings.HasSuffix(name, "@.service") {
			name = strings.Replace(name, "@.service", "@test.service", 1)
		}
		names = append(names, name)
	}
	if len(names) < 6 {
		t.Fatalf("units: %v", names)
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--root=" + root, "--man=no"}, names...)...)
	cmd.Dir = units
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify %v: %v\n%s", names, err, out)
	}
}
