package main_test

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

// TestCommandLine: what zend says and its exit code for command lines, as
// the README's tables give them. A bad command line (flag, command or
// argument) is 2, whatever the configuration file says, and the error
// names the flag it came from.
func TestCommandLine(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "zend.toml", "[server]\nlisten = [\"127.0.0.1:0\"]\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring of stdout ("" to not check)
		stderr string // a substring of stderr ("" to not check)
	}{
		// -set without '=' (seen: exit 1).
		{"set without =", []string{"-set", "foo", "check"}, 2, "", `flag -set: "foo": allowed is key=value`},
		// An unknown key.
		{"set unknown key", []string{"-set", "server.nope=1", "check"}, 2, "", "flag -set: server.nope"},
		// A value out of range.
		{"set out of range", []string{"-set", "limits.max_connections=0", "check"}, 2, "", "flag -set: limits.max_connections"},
		// An unknown engine names -engine (seen: "flag -set", exit 1).
		{"unknown engine", []string{"-engine", "bogus", "check"}, 2, "", "flag -engine: server.engine: unknown engine \"bogus\""},
		// A listen address without a port names -listen.
		{"bad listen", []string{"-listen", "nohost", "check"}, 2, "", "flag -listen: server.listen"},
		// An unknown flag.
		{"unknown flag", []string{"-nope", "check"}, 2, "", "flag provided but not defined: -nope"},
		// An unknown command.
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		// No command.
		{"no command", nil, 2, "", "usage: zend"},
		// A command that takes no arguments.
		{"check with an argument", []string{"check", "extra"}, 2, "", "check takes no arguments"},
		// The version, three ways (seen: --version unknown).
		{"version", []string{"version"}, 0, "zend ", ""},
		{"--version", []string{"--version"}, 0, "zend ", ""},
		{"-version", []string{"-version"}, 0, "zend ", ""},
		// help is not an error.
		{"help", []string{"help"}, 0, "usage: zend", ""},
		// A file that is invalid is 1, not 2.
		{"invalid file", []string{"-c", writeFile(t, t.TempDir(), "bad.toml", "[limits]\nmax_connections = 0\n"), "check"}, 1, "", "bad.toml:2: limits.max_connections"},
		// A valid one is 0.
		{"valid", []string{"-c", cfg, "check", "-q"}, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errout, code := runBin(t, "zend", nil, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errout, tt.stderr) {
				t.Fatalf("zend %q: exit %d, stdout %q, stderr %q; want exit %d, %q in stdout, %q in stderr",
					tt.args, code, clipOut(out), clipOut(errout), tt.code, tt.stdout, tt.stderr)
			}
		})
	}
	// The three spellings print the same version.
	v1, _, _ := runBin(t, "zend", nil, "version")
	v2, _, _ := runBin(t, "zend", nil, "--version")
	if v1 != v2 || strings.TrimSpace(v1) == "zend" {
		t.Errorf("version %q, --version %q: want the same, naming a version", v1, v2)
	}
}

// TestVersionFromBuild: the version a build sets (the Debian package
// sets its own) is the one zend prints (seen: "devel" in the package).
func TestVersionFromBuild(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "zend")
	cmd := exec.Command("go", "build", "-ldflags", "-X zend/daemon.version=9.8.7-test", "-o", exe, "zend/cmd/zend")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	out, err := exec.Command(exe, "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "zend 9.8.7-test" {
		t.Fatalf("zend --version: %q %v", out, err)
	}
	// The package's build script passes its version the same way.
	b, err := os.ReadFile("../../packaging/deb/build.sh")
	if err != nil || !strings.Contains(string(b), "-X zend/daemon.version=$version") {
		t.Fatalf("packaging/deb/build.sh does not set the version: %v", err)
	}
}

func clipOut(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// readmeCodes returns the exit codes the README's "Running as a daemon"
// table gives each command, as "code what" pairs ("7" -> "not running").
func readmeCodes(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]map[string]string{}
	row := regexp.MustCompile("(?m)^\\| `zend (?:\\[-c FILE\\] )?(\\w+)` \\|[^|]*\\| (.*) \\|$")
	code := regexp.MustCompile(`(?:^|; )(\d),? ([^;]*)`)
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		codes := map[string]string{}
		for _, c := range code.FindAllStringSubmatch(m[2], -1) {
			codes[c[1]] = c[2]
		}
		rows[m[1]] = codes
	}
	return rows
}

// TestREADMEExitCodes: the exit codes of the README's table are the
// binary's, in the situations the table names: running, not running, a
// dead daemon's pidfile, a configuration file that does not exist.
func TestREADMEExitCodes(t *testing.T) {
	table := readmeCodes(t)
	for _, cmd := range []string{"start", "stop", "reload", "reopen", "status", "upgrade"} { // restart: "as start"
		if len(table[cmd]) == 0 {
			t.Fatalf("the README's table has no exit codes for zend %s", cmd)
		}
	}
	// doc returns the code the README gives cmd for a situation, by the
	// words it uses for it.
	doc := func(cmd, words string) int {
		t.Helper()
		// Words that begin a code's text first ("running" is not "3 not
		// running"), then words anywhere in it.
		for _, match := range []func(string, string) bool{strings.HasPrefix, strings.Contains} {
			for c, what := range table[cmd] {
				if match(what, words) {
					n, _ := strconv.Atoi(c)
					return n
				}
			}
		}
		t.Fatalf("the README gives zend %s no code for %q: %v", cmd, words, table[cmd])
		return -1
	}
	d := newDaemonEnv(t, "")
	check := func(situation, cmd, words string) {
		t.Helper()
		_, errout, code := d.zend(t, nil, cmd)
		if want := doc(cmd, words); code != want {
			t.Errorf("%s: zend %s exits %d, the README says %d (%s); stderr %q", situation, cmd, code, want, words, clipOut(errout))
		}
	}
	// Nothing runs.
	check("not running", "status", "not running")
	check("not running", "reload", "not running")
	check("not running", "reopen", "not running")
	check("not running", "upgrade", "not running")
	check("not running", "stop", "also when nothing ran")
	// Running.
	check("stopped", "start", "serving")
	check("running", "status", "running")
	check("running", "reload", "applied")
	check("running", "reopen", "signalled")
	// A daemon killed: its pidfile stays.
	pid := d.pid(t)
	syscall.Kill(pid, syscall.SIGKILL)
	waitUntil(t, 10*time.Second, "the daemon to die", func() (bool, string) {
		st := procStat(pid)
		return st == nil || st[0] == "Z", fmt.Sprint(st)
	})
	check("killed", "status", "dead but the pidfile exists")
	// A -c FILE that does not exist: 1 for every command, status 4.
	missing := filepath.Join(t.TempDir(), "typo.toml")
	for _, cmd := range []string{"stop", "reload", "status"} {
		_, _, code := runBin(t, "zend", nil, "-c", missing, cmd)
		want := 1
		if cmd == "status" {
			want = doc("status", "cannot be read")
		}
		if code != want {
			t.Errorf("zend -c %s %s exits %d, want %d", missing, cmd, code, want)
		}
	}
}
