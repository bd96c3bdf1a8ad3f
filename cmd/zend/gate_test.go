package main_test

import (
	"os"
	"testing"
)

// systemEnv names the environment variable that runs the system tests:
// the ones that boot a container, build a Debian tree or package, create
// users, mount file systems or run system services (inetd, xinetd,
// supervisord) as root. They take minutes, download packages and change
// the machine while they run, so `go test ./...` leaves them out unless
// asked; .ci/run asks, and CI=true implies it. Its name is outside
// ZEND_*: every ZEND_ variable is zend's configuration, and zend refuses
// the ones it does not know (seen: the binaries under test inherited it).
const systemEnv = "ZENDTEST_SYSTEM"

// systemTests reports whether the system tests run.
func systemTests() bool {
	return os.Getenv(systemEnv) == "1" || os.Getenv("CI") != ""
}

// needSystem runs the rest of a system test only when asked; otherwise it
// skips with one line saying what the test would check and how to run
// it. When asked, the test needs root (and fails without it under CI).
func needSystem(t *testing.T, what string) {
	t.Helper()
	if !systemTests() {
		t.Skipf("system test, not run by default: %s; run it with %s=1 as root (.ci/run does)", what, systemEnv)
	}
	needRoot(t)
}
