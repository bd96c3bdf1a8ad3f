package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"zend/daemon/trust"
)

func TestPidfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "zend.pid")

	// No file: not running.
	if st, _, err := CheckPidfile(path); st != NotRunning || err != nil {
		t.Fatalf("before: %v %v", st, err)
	}
	p, err := AcquirePidfile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The lock is held before the pid is written: running, pid unknown.
	if st, pid, _ := CheckPidfile(path); st != Running || pid != 0 {
		t.Fatalf("locked, unpublished: %v %d", st, pid)
	}
	if err := p.Publish(4242, nil); err != nil {
		t.Fatal(err)
	}
	if pid, err := ReadPid(path); pid != 4242 || err != nil {
		t.Fatalf("ReadPid = %d, %v", pid, err)
	}
	if st, pid, _ := CheckPidfile(path); st != Running || pid != 4242 {
		t.Fatalf("held: %v %d", st, pid)
	}
	// The lock is a file of its own that only its owner can open; the
	// pidfile is for everybody to read.
	for f, mode := range map[string]os.FileMode{LockPath(path): 0o600, path: 0o644, filepath.Dir(path): 0o755 | os.ModeDir} {
		if fi, err := os.Lstat(f); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v %v, want mode %v", f, fi.Mode(), err, mode)
		}
	}
	// A second daemon is refused, with the running pid.
	if _, err := AcquirePidfile(path); !errors.Is(err, ErrRunning) {
		t.Fatalf("second acquire: %v, want ErrRunning", err)
	}
	// An upgrade rewrites the pid in place, shorter or longer.
	for _, pid := range []int{7, 1234567} {
		if err := p.Rewrite(pid); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadPid(path); got != pid || err != nil {
			t.Fatalf("after Rewrite(%d): %d %v", pid, got, err)
		}
	}
	// No temporary file is left in the folder: the pidfile and the lock.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 2 {
		t.Fatalf("folder holds %d entries, want the pidfile and the lock", len(ents))
	}
	// Release by another pid leaves the file; by its pid removes it.
	if err := p.Release(1234567); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("pidfile left after Release")
	}
	if st, _, _ := CheckPidfile(path); st != NotRunning {
		t.Fatalf("after release: %v", st)
	}

	// A stale pidfile (a daemon killed with -9 leaves one, unlocked) is
	// reported, then taken over.
	os.WriteFile(path, []byte("99999\n"), 0o644)
	if st, pid, _ := CheckPidfile(path); st != Stale || pid != 99999 {
		t.Fatalf("stale: %v %d", st, pid)
	}
	p2, err := AcquirePidfile(path)
	if err != nil {
		t.Fatalf("take over a stale pidfile: %v", err)
	}
	defer p2.Close()
	if err := p2.Publish(7, nil); err != nil {
		t.Fatal(err)
	}
	if pid, _ := ReadPid(path); pid != 7 {
		t.Fatalf("taken over pidfile holds %d", pid)
	}
	// An empty pidfile (a daemon that could not remove it) names nobody.
	os.WriteFile(filepath.Join(dir, "empty.pid"), nil, 0o644)
	if pid, err := ReadPid(filepath.Join(dir, "empty.pid")); pid != 0 || err != nil {
		t.Fatalf("empty pidfile: %d %v", pid, err)
	}
	// Garbage in a pidfile is an error, and a pidfile of any size is
	// read only as far as a pid goes.
	os.WriteFile(filepath.Join(dir, "bad.pid"), []byte("x\n"), 0o644)
	if _, err := ReadPid(filepath.Join(dir, "bad.pid")); !errors.Is(err, errNoPid) {
		t.Fatalf("garbage pid: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "huge.pid"), []byte("12"+strings.Repeat("\x00", 1<<20)), 0o644)
	if _, err := ReadPid(filepath.Join(dir, "huge.pid")); !errors.Is(err, errNoPid) {
		t.Fatalf("huge pidfile: %v", err)
	}
	// Garbage names nobody: without the lock held, the pidfile is stale.
	if st, pid, err := CheckPidfile(filepath.Join(dir, "huge.pid")); st != Stale || pid != 0 || err != nil {
		t.Fatalf("huge pidfile: %v %d %v", st, pid, err)
	}
}

// TestUntrustedFolders: root's files go only where nobody else can change
// what leads to them.
func TestUntrustedFolders(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the pidfile path
		want  error
	}{
		// A folder that group and others may write.
		{"world-writable folder", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "open")
			os.Mkdir(d, 0o777)
			os.Chmod(d, 0o777)
			return filepath.Join(d, "zend.pid")
		}, trust.ErrUntrusted},
		// A sticky world-writable folder (/tmp) as the pidfile's own folder.
		{"sticky folder", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			os.Mkdir(d, 0o777)
			os.Chmod(d, os.ModeSticky|0o777)
			return filepath.Join(d, "zend.pid")
		}, trust.ErrUntrusted},
		// A sticky world-writable ancestor is fine.
		{"below a sticky folder", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			os.Mkdir(d, 0o777)
			os.Chmod(d, os.ModeSticky|0o777)
			return filepath.Join(d, "run", "zend.pid")
		}, nil},
		// A world-writable ancestor without the sticky bit: anyone can
		// swap the folder below it.
		{"below a world-writable folder", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "open")
			os.Mkdir(d, 0o777)
			os.Chmod(d, 0o777)
			return filepath.Join(d, "run", "zend.pid")
		}, trust.ErrUntrusted},
		// A link at the lock's name is not followed.
		{"link at the lock", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "run")
			os.Mkdir(d, 0o755)
			os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(d, "zend.lock"))
			return filepath.Join(d, "zend.pid")
		}, trust.ErrUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			path := tt.setup(t, dir)
			p, err := AcquirePidfile(path)
			if p != nil {
				p.Close()
			}
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Fatalf("AcquirePidfile(%s) = %v, want %v", path, err, tt.want)
			}
			if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); err == nil {
				t.Fatal("a link was followed")
			}
		})
	}
}

// TestRootOnlyConfig: root's configuration may sit in /tmp or in a folder
// of root's below it (nobody else can rename either there), and may be a
// link of root's, but not anywhere others can swap what leads to it.
//
// The rule trusts root and the user running the test, so it runs as any
// user.
func TestRootOnlyConfig(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the file
		ok    bool
	}{
		// Directly in a sticky world-writable folder.
		{"in a sticky folder", func(t *testing.T, dir string) string {
			return file(t, mkdir(t, dir, "tmp", os.ModeSticky|0o777), "zend.toml", 0o600)
		}, true},
		// In a folder of root's below a sticky one (seen refused:
		// /tmp/meas/zend.toml).
		{"below a sticky folder", func(t *testing.T, dir string) string {
			return file(t, mkdir(t, mkdir(t, dir, "tmp", os.ModeSticky|0o777), "meas", 0o755), "zend.toml", 0o600)
		}, true},
		// In a world-writable folder without the sticky bit.
		{"in a world-writable folder", func(t *testing.T, dir string) string {
			return file(t, mkdir(t, dir, "open", 0o777), "zend.toml", 0o600)
		}, false},
		// Below one.
		{"below a world-writable folder", func(t *testing.T, dir string) string {
			return file(t, mkdir(t, mkdir(t, dir, "open", 0o777), "etc", 0o755), "zend.toml", 0o600)
		}, false},
		// A file others may write.
		{"group-writable file", func(t *testing.T, dir string) string {
			return file(t, dir, "zend.toml", 0o664)
		}, false},
		// root's link to root's file (/etc/zend.toml -> zend/zend.toml).
		{"link of root's", func(t *testing.T, dir string) string {
			target := file(t, mkdir(t, dir, "zend", 0o755), "zend.toml", 0o600)
			link := filepath.Join(dir, "zend.toml")
			os.Symlink(target, link)
			return link
		}, true},
		// root's link into a folder others may write.
		{"link into an open folder", func(t *testing.T, dir string) string {
			target := file(t, mkdir(t, dir, "open", 0o777), "zend.toml", 0o600)
			link := filepath.Join(dir, "zend.toml")
			os.Symlink(target, link)
			return link
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			err := rootOnly(tt.setup(t, dir))
			if (err == nil) != tt.ok {
				t.Fatalf("rootOnly: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// mkdir makes dir/name with mode (umask aside) and returns it.
func mkdir(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// file makes dir/name with mode and returns it.
func file(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, []byte("[server]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRebornErr: go-daemon's second write to the child's stdin can fail
// with EPIPE once the child has its context; with a child started that
// is not a failed start (the readiness pipe decides), anything else is.
func TestRebornErr(t *testing.T) {
	child := &os.Process{Pid: 1}
	epipe := &os.PathError{Op: "write", Path: "|1", Err: syscall.EPIPE}
	tests := []struct {
		name  string
		child *os.Process
		err   error
		fails bool
	}{
		{"started", child, nil, false},                             // no error at all
		{"second write after the child read", child, epipe, false}, // the seen flake
		{"no child", nil, errors.New("fork/exec: ETXTBSY"), true},  // StartProcess failed
		{"EPIPE without a child", nil, epipe, true},                // cannot happen, but is a failure
		{"other write error", child, &os.PathError{Op: "write", Path: "|1", Err: syscall.EIO}, true},
	}
	for _, tt := range tests {
		if got := rebornErr(tt.child, tt.err); (got != nil) != tt.fails {
			t.Errorf("%s: rebornErr = %v, want failure %v", tt.name, got, tt.fails)
		}
	}
}
