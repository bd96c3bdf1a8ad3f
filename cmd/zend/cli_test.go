package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
