package daemon

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
)

// TestControlNamesItsProcess checks the proof stop, reload and reopen
// rest on: the pid queryStatus learns from the kernel is the process that
// serves the control socket (here this test, which also created it and,
// as an upgraded daemon does, claims it again). On Linux it comes with the
// answer (SO_PASSCRED); on the BSDs and macOS from the connection's peer.
func TestControlNamesItsProcess(t *testing.T) {
	dir, err := os.MkdirTemp("", "zc") // short: socket paths are limited to about 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctl, err := listenControl(filepath.Join(dir, "zend.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.close()
	if err := claimControl(ctl.ln); err != nil {
		t.Fatalf("claimControl: %v", err)
	}
	go func() {
		for {
			c, err := ctl.ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("{\"pid\":1}\n"))
			c.Close()
		}
	}()
	for range 3 {
		st, pid, err := queryStatus(ctl.path)
		if err != nil {
			t.Fatal(err)
		}
		if pid != os.Getpid() || st.Pid != 1 {
			t.Fatalf("answered by pid %d (status pid %d), want pid %d", pid, st.Pid, os.Getpid())
		}
	}
}
