package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPidfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "zend.pid")

	// No file: not running.
	if st, _, err := CheckPidfile(path); st != NotRunning || err != nil {
		t.Fatalf("before: %v %v", st, err)
	}
	p, err := AcquirePidfile(path, 4242)
	if err != nil {
		t.Fatal(err)
	}
	// The pid is in the file, and the file is locked.
	if pid, err := ReadPid(path); pid != 4242 || err != nil {
		t.Fatalf("ReadPid = %d, %v", pid, err)
	}
	if st, pid, _ := CheckPidfile(path); st != Running || pid != 4242 {
		t.Fatalf("held: %v %d", st, pid)
	}
	// A second daemon is refused, with the running pid.
	if _, err := AcquirePidfile(path, 5000); !errors.Is(err, ErrRunning) {
		t.Fatalf("second acquire: %v, want ErrRunning", err)
	}
	// No temporary file is left in the folder.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("folder holds %d entries, want only the pidfile", len(ents))
	}
	// Release removes it.
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("pidfile left after Release")
	}

	// A stale pidfile (a daemon killed with -9 leaves one, unlocked) is
	// reported, then taken over.
	os.WriteFile(path, []byte("99999\n"), 0o644)
	if st, pid, _ := CheckPidfile(path); st != Stale || pid != 99999 {
		t.Fatalf("stale: %v %d", st, pid)
	}
	p2, err := AcquirePidfile(path, 7)
	if err != nil {
		t.Fatalf("take over a stale pidfile: %v", err)
	}
	defer p2.Release()
	if pid, _ := ReadPid(path); pid != 7 {
		t.Fatalf("taken over pidfile holds %d", pid)
	}
	// Garbage in a pidfile is an error that says what it found.
	os.WriteFile(filepath.Join(dir, "bad.pid"), []byte("x\n"), 0o644)
	if _, err := ReadPid(filepath.Join(dir, "bad.pid")); err == nil {
		t.Fatal("garbage pid accepted")
	}
}

func TestSanitizeEnv(t *testing.T) {
	got := sanitizeEnv([]string{"HOME=/root", "ZEND_LISTEN=1.2.3.4:5", "TZ=UTC", "_GO_DAEMON=1", "_ZEND_STAGE=2", "PATH=/x"})
	want := map[string]bool{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin": true, "ZEND_LISTEN=1.2.3.4:5": true, "TZ=UTC": true}
	if len(got) != len(want) {
		t.Fatalf("sanitizeEnv = %q", got)
	}
	for _, kv := range got {
		if !want[kv] {
			t.Fatalf("sanitizeEnv kept %q", kv)
		}
	}
}
