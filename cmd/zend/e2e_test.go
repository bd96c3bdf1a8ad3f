package main_test

// End-to-end tests: they build the real binaries, start them as processes,
// talk TCP to them on loopback and send them signals.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// bin is the folder holding the binaries built for this test run.
var bin string

// staticBin holds a static zend (CGO_ENABLED=0), as the package ships it:
// bin itself when the tests run without -race.
var staticBin string

// seccompExecEnv makes the test binary a launcher: it installs a seccomp
// filter that refuses io_uring_setup with EPERM (as Docker's default
// profile and systemd's SystemCallFilter= do), then execs its arguments
// (seccompExec, Linux only).
const seccompExecEnv = "ZENDTEST_SECCOMP_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(seccompExecEnv) != "" {
		seccompExec() // does not return
	}
	os.Exit(testMain(m))
}

// testMain builds the binaries under test, runs the tests, and fails the
// run when a binary reported a data race.
//
// Under -race (which needs cgo) the binaries are built with the race
// detector too, so the end-to-end tests run the daemon's own code under
// it; each binary writes its reports to a file in raceDir (GORACE
// log_path, which the daemon keeps through its daemonisation), whoever
// it runs as. Otherwise they are static, as the Debian package ships
// them: no dynamic loader or libc start-up in every in-zen1 exec.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "zend-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	raceDir := filepath.Join(dir, "race")
	os.Mkdir(raceDir, 0o755)
	os.Chmod(raceDir, 0o1777) // the binaries may run as nobody
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if raceBuild {
		args = append(args, "-race")
		env = append(os.Environ(), "CGO_ENABLED=1")
		// atexit_sleep_ms=0: a race-built process otherwise sleeps 1 s
		// as it exits, which every zend command the tests run would pay.
		os.Setenv("GORACE", "log_path="+filepath.Join(raceDir, "report")+" halt_on_error=0 atexit_sleep_ms=0")
	}
	cmd := exec.Command("go", append(args, "zend/cmd/...")...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		return 1
	}
	os.Chmod(dir, 0o755) // inetd runs the binaries as nobody
	bin = dir
	staticBin = dir
	if raceBuild {
		// A static zend too, for the tests of what the package ships
		// that a cgo build cannot do (a race build needs cgo, and with
		// cgo no_new_privs and the bounding set reach only some threads:
		// zend says so in its log).
		staticBin = filepath.Join(dir, "static")
		cmd := exec.Command("go", "build", "-o", staticBin+string(os.PathSeparator), "zend/cmd/zend")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build the static zend:", err)
			return 1
		}
		os.Chmod(staticBin, 0o755)
	}
	code := m.Run()
	reports, _ := filepath.Glob(filepath.Join(raceDir, "report.*"))
	for _, r := range reports {
		b, _ := os.ReadFile(r)
		fmt.Fprintf(os.Stderr, "a binary under test reported a data race (%s):\n%s\n", filepath.Base(r), b)
		code = 1
	}
	return code
}

// proc is a running binary whose stderr is collected.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logb bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logb.String()
}

// waitLog waits up to 10 s for a log line matching re and returns its
// submatches.
func (p *proc) waitLog(t testing.TB, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if m := rx.FindStringSubmatch(p.log()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.log()); m != nil {
				return m
			}
			t.Fatalf("process exited (%v) before logging %q; log:\n%s", p.err, re, p.log())
		default:
		}
	}
	t.Fatalf("no log line %q within 10 s; log:\n%s", re, p.log())
	return nil
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("process did not exit within %v; log:\n%s", d, p.log())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// start runs a built binary with args and env added to the environment. It
// is stopped with SIGTERM, then SIGKILL after 10 s, when the test ends.
func start(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	path := name
	if !filepath.IsAbs(name) && name != "sh" {
		path = filepath.Join(bin, name)
	}
	p := &proc{cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Env = append(cleanEnv(), env...)
	r, w := io.Pipe()
	p.cmd.Stderr = w
	p.cmd.Stdout = w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			p.mu.Lock()
			p.logb.WriteString(line)
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// cleanEnv is the environment without ZEND_* variables of the caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ZEND_") {
			env = append(env, kv)
		}
	}
	return env
}

// startZend runs "zend run" with args on a free loopback port and returns
// the process and the address it listens on.
func startZend(t testing.TB, env []string, args ...string) (*proc, string) {
	t.Helper()
	hasListen := false
	for _, a := range args {
		if a == "-listen" || strings.HasPrefix(a, "-c") {
			hasListen = true
		}
	}
	for _, e := range env {
		if strings.HasPrefix(e, "ZEND_LISTEN=") {
			hasListen = true
		}
	}
	if !hasListen {
		args = append([]string{"-listen", "127.0.0.1:0"}, args...)
	}
	p := start(t, "zend", env, append(args, "run")...)
	m := p.waitLog(t, `msg=listening addr=(\S+)`)
	p.waitLog(t, `msg="zend ready"`)
	return p, m[1]
}

// runBin runs a binary to its end (at most 20 s) and returns its output
// and exit code.
func runBin(t *testing.T, name string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = append(cleanEnv(), env...)
	return runCmd(t, cmd)
}

// runCmd runs cmd to its end (at most 20 s) and returns its output and
// exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// client asks the three aphorisms with zen-client and checks its output.
func client(t *testing.T, addr string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, errout, code := runBin(t, "zen-client", nil, "-p", port, host)
	if code != 0 {
		t.Fatalf("zen-client exit %d: %s%s", code, out, errout)
	}
	for _, want := range []string{"Beautiful is better than? Ugly.\n", "Explicit is better than? Implicit.\n", "Simple is better than? Complex.\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("zen-client output %q lacks %q", out, want)
		}
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunServesAndStopsGracefully(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p, addr := startZend(t, nil)
			client(t, addr)
			p.waitLog(t, `msg=closed client=127\.0\.0\.1:\d+`)
			p.cmd.Process.Signal(sig)
			if code := p.wait(t, 15*time.Second); code != 0 {
				t.Fatalf("exit code %d after %v, want 0; log:\n%s", code, sig, p.log())
			}
			p.waitLog(t, `msg=stopped finished=0 cut_off=0`)
		})
	}
}

func TestEmbeddedDefaults(t *testing.T) {
	if _, err := os.Stat("/etc/zend.toml"); err == nil {
		t.Skip("/etc/zend.toml exists on this machine")
	}
	p, _ := startZend(t, nil)
	p.waitLog(t, `running on embedded defaults" missing=/etc/zend.toml`)
}

// TestEveryEngine runs the same client load against each engine.
func TestEveryEngine(t *testing.T) {
	for _, engine := range []string{"single", "pool", "goroutine", "eventloop", "uring"} {
		t.Run(engine, func(t *testing.T) {
			_, addr := startZend(t, nil, "-engine", engine)
			var wg sync.WaitGroup
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); client(t, addr) }()
			}
			// A pipelined conversation of 3000 questions in one write.
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			q := strings.Repeat("Beautiful is better than?\nSimple is better than? ?", 1000)
			want := strings.Repeat("Ugly.Complex.Error: unknown aphorism.", 1000)
			go io.WriteString(c, q)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Fatalf("pipelined answers wrong (%v)", err)
			}
			c.Close()
			wg.Wait()
		})
	}
}

func TestIncompleteQuestionIsLogged(t *testing.T) {
	p, addr := startZend(t, nil)
	host, port, _ := net.SplitHostPort(addr)
	if _, errout, code := runBin(t, "zen-client", nil, "-e", "-p", port, host); code != 0 {
		t.Fatalf("zen-client -e: exit %d: %s", code, errout)
	}
	p.waitLog(t, `level=WARN msg="incomplete question then closed" client=127\.0\.0\.1:\d+ bytes="\\"(Beautiful|Explicit|Simple) is better than\\""`)
}

func TestOversizedQuestionClosesAndLogs(t *testing.T) {
	p, addr := startZend(t, nil, "-set", "limits.max_question_bytes=64")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, strings.Repeat("z", 200))
	if n, _ := c.Read(make([]byte, 10)); n != 0 {
		t.Fatal("answer to an oversized question")
	}
	p.waitLog(t, `msg="question too long, closed" client=127\.0\.0\.1:\d+ limit=64`)
}

func TestConfigFileAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "zend.toml", `
[server]
listen = ["127.0.0.1:1"]
engine = "pool"
[log]
file = "logs/zend.log"
[answers]
"Readability counts?" = "Yes."
`)
	// The environment overrides the file's listen address, and -listen
	// (a flag) overrides the environment.
	p, addr := startZend(t, []string{"ZEND_LISTEN=127.0.0.1:2", "ZEND_LOG_FILE=-"}, "-c", cfg, "-listen", "127.0.0.1:0", "-engine", "goroutine")
	p.waitLog(t, `msg=listening addr=127\.0\.0\.1:\d+ engine=goroutine`)
	host, port, _ := net.SplitHostPort(addr)
	out, _, code := runBin(t, "zen-client", nil, "-p", port, "-ask", "Readability counts?", host)
	if code != 0 || out != "Readability counts? Yes.\n" {
		t.Fatalf("custom answer: %q, exit %d", out, code)
	}

	// log.file relative to the config file's folder, created 0640.
	addr2 := freeAddr(t)
	p2 := start(t, "zend", nil, "-c", cfg, "-listen", addr2, "run")
	waitDial(t, addr2)
	client(t, addr2)
	logPath := filepath.Join(dir, "logs", "zend.log")
	var data []byte
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		data, _ = os.ReadFile(logPath)
		if bytes.Contains(data, []byte("msg=closed")) {
			break
		}
	}
	if !bytes.Contains(data, []byte("msg=closed")) {
		t.Fatalf("log file %s lacks the conversation: %q (stderr: %s)", logPath, data, p2.log())
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("log file mode: %v %v, want 0640", fi.Mode(), err)
	}
}

func TestBadConfigExits1(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, text string
		want       string
	}{
		// Unknown key: file, line, key, allowed keys.
		{"unknown key", "[limits]\nmax_conns = 5\n", "zend.toml:2: limits.max_conns: unknown key; allowed keys in [limits] are max_connections"},
		// Zero limit.
		{"zero limit", "[limits]\n\nmax_connections = 0\n", "zend.toml:3: limits.max_connections: 0: allowed is 1 or more"},
		// Unknown engine.
		{"engine", "[server]\nengine = \"fork\"\n", "zend.toml:2: server.engine: unknown engine \"fork\": allowed are auto, single, pool, goroutine, eventloop, uring"},
		// Bad address.
		{"address", "[server]\nlisten = [\"localhost\"]\n", "zend.toml:2: server.listen:"},
		// Wrong type.
		{"type", "[server]\nworkers = 1.5\n", "zend.toml:2: server.workers: wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, dir, "zend.toml", tt.text)
			for _, cmd := range []string{"run", "check"} {
				_, errout, code := runBin(t, "zend", nil, "-c", cfg, cmd)
				if code != 1 {
					t.Errorf("%s: exit %d, want 1; stderr %q", cmd, code, errout)
				}
				if !strings.Contains(errout, tt.want) {
					t.Errorf("%s: stderr %q lacks %q", cmd, errout, tt.want)
				}
			}
		})
	}
	// A file named with -c must exist.
	_, errout, code := runBin(t, "zend", nil, "-c", filepath.Join(dir, "missing.toml"), "run")
	if code != 1 || !strings.Contains(errout, "missing.toml: no such file") {
		t.Errorf("missing -c file: exit %d, %q", code, errout)
	}
	// A bad environment value names the variable.
	_, errout, code = runBin(t, "zend", []string{"ZEND_MAX_CONNECTIONS=-3"}, "check")
	if code != 1 || !strings.Contains(errout, "environment ZEND_MAX_CONNECTIONS: limits.max_connections: -3") {
		t.Errorf("bad env: exit %d, %q", code, errout)
	}
	// A bad command line is exit 2.
	if _, _, code := runBin(t, "zend", nil, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if _, _, code := runBin(t, "zend", nil, "-bogus", "run"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestCheckPrintsEffectiveConfig(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "zend.toml", "[limits]\nmax_connections = 77\n")
	out, errout, code := runBin(t, "zend", []string{"ZEND_ENGINE=pool"}, "-c", cfg, "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errout)
	}
	// The answers in force include the built-in ones (seen: an empty
	// [answers] although three answers were served).
	for _, want := range []string{"max_connections = 77", `engine = "pool"`, `question_timeout = "30s"`, "[answers]",
		`"Beautiful is better than?" = "Ugly."`, `"Simple is better than?" = "Complex."`, `"Explicit is better than?" = "Implicit."`} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errout, "is valid") {
		t.Errorf("check stderr %q", errout)
	}
	// The sample configuration is valid.
	if _, errout, code := runBin(t, "zend", nil, "-c", "../../etc/zend.toml", "check"); code != 0 {
		t.Errorf("etc/zend.toml: exit %d: %s", code, errout)
	}
}

func TestAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, errout, code := runBin(t, "zend", nil, "-listen", ln.Addr().String(), "run")
	if code != 1 || !strings.Contains(errout, "address already in use") {
		t.Fatalf("exit %d, stderr %q; want 1 and the reason", code, errout)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "zend.toml", "[answers]\n\"Readability counts?\" = \"Yes.\"\n")
	p, addr := startZend(t, nil, "-c", cfg, "-listen", "127.0.0.1:0")
	askOn := conversation(t, addr)
	if a := askOn("Readability counts?"); a != "Yes." {
		t.Fatalf("before reload: %q", a)
	}
	writeFile(t, dir, "zend.toml", "[answers]\n\"Readability counts?\" = \"Very much.\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `msg="configuration reloaded"`)
	if a := askOn("Readability counts?"); a != "Very much." {
		t.Fatalf("after reload, same connection: %q", a)
	}
	// A broken file keeps the running answers and says why.
	writeFile(t, dir, "zend.toml", "[answers]\n\"Readability counts?\" = 7\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `msg="reload failed, keeping the running configuration" err=".*zend.toml:2`)
	if a := askOn("Readability counts?"); a != "Very much." {
		t.Fatalf("after a failed reload: %q", a)
	}
}

// TestSecondSignalForcesExit: a conversation waiting on a slow answer holds
// the drain; a second SIGTERM ends it at once.
func TestSecondSignalForcesExit(t *testing.T) {
	p, addr := startZend(t, nil, "-set", "server.answer_delay=1m", "-set", "limits.shutdown_timeout=5m")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "Simple is better than?")
	p.waitLog(t, `msg=accepted`)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, `msg="shutting down"`)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, `msg="second stop request`)
	if code := p.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	p.waitLog(t, `msg=stopped finished=0 cut_off=1`)
}

func TestZenClientErrors(t *testing.T) {
	// Nothing listens: a one-line error and exit 1.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	_, errout, code := runBin(t, "zen-client", nil, "-p", port, "127.0.0.1")
	if code != 1 || !strings.Contains(errout, "cannot connect to 127.0.0.1:"+port) || strings.Count(errout, "\n") != 1 {
		t.Errorf("unreachable: exit %d, %q", code, errout)
	}
	// Bad usage: exit 2.
	if _, _, code := runBin(t, "zen-client", nil); code != 2 {
		t.Errorf("no host: exit %d, want 2", code)
	}
	// A server that answers a built-in question wrongly.
	cfg := writeFile(t, t.TempDir(), "zend.toml", "[answers]\n\"Beautiful is better than?\" = \"Pretty.\"\n")
	_, addr := startZend(t, nil, "-c", cfg, "-listen", "127.0.0.1:0")
	_, p, _ := net.SplitHostPort(addr)
	_, errout, code = runBin(t, "zen-client", nil, "-p", p, "127.0.0.1")
	if code != 1 || !strings.Contains(errout, `wrong answer to "Beautiful is better than?"`) {
		t.Errorf("wrong answer: exit %d, %q", code, errout)
	}
	// A server that closes before answering.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			c.Read(make([]byte, 100))
			c.Close()
		}
	}()
	_, errout, code = runBin(t, "zen-client", nil, "-p", fmt.Sprint(ln2.Addr().(*net.TCPAddr).Port), "127.0.0.1")
	if code != 1 || !strings.Contains(errout, "closed the connection without answering") {
		t.Errorf("early close: exit %d, %q", code, errout)
	}
}

func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here")
	}
	ln.Close()
	_, addr := startZend(t, nil, "-listen", "[::1]:0")
	client(t, addr)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitDial waits up to 10 s until addr accepts connections.
func waitDial(t testing.TB, addr string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s after 10 s", addr)
}

// TestMaxConnectionsLoweredToFileLimit starts zend with a soft and hard
// open-file limit of 100: max_connections cannot fit and is lowered, and
// the log says so.
func TestMaxConnectionsLoweredToFileLimit(t *testing.T) {
	out, errout, code := runShell(t, "ulimit -n 100 && exec "+filepath.Join(bin, "zend")+" -listen 127.0.0.1:0 -set limits.shutdown_timeout=1s check")
	if code != 0 {
		t.Fatalf("check under ulimit: %d %s %s", code, out, errout)
	}
	pr := start(t, "sh", nil, "-c", "ulimit -n 100 && exec "+filepath.Join(bin, "zend")+" -listen 127.0.0.1:0 run")
	pr.waitLog(t, `limits.max_connections does not fit in the open-file limit \(RLIMIT_NOFILE\), lowered" max_connections=10000 nofile=100 now=67`)
	pr.waitLog(t, `msg="zend ready"`)
}

// runShell runs a shell command line to its end (at most 20 s).
func runShell(t *testing.T, line string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = cleanEnv()
	return runCmd(t, cmd)
}

// conversation opens a connection to addr that stays open for the test
// and returns a function asking a question on it and returning the answer.
func conversation(t *testing.T, addr string) func(q string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	convMu.Lock()
	convs[t.Name()] = append(convs[t.Name()], c)
	convMu.Unlock()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	return func(q string) string {
		t.Helper()
		io.WriteString(c, q)
		a, err := r.ReadString('.')
		if err != nil {
			t.Fatalf("ask %q: %v", q, err)
		}
		return a
	}
}

// convs are the connections conversation opened, by test, for closeAll.
var (
	convMu sync.Mutex
	convs  = map[string][]net.Conn{}
)

// netDial dials addr with a 5 s timeout.
func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// load is clients running a conversation in a loop until stopped.
type load struct {
	asked, failed atomic.Int64
	mu            sync.Mutex
	errs          []string
	stop          chan struct{}
	wg            sync.WaitGroup
}

// startLoad runs converse in n goroutines until stop is called.
func startLoad(n int, converse func() error) *load {
	l := &load{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.asked.Add(1)
				if err := converse(); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.errs = append(l.errs, err.Error())
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

// waitMore waits until n more conversations have run, so a step of a
// test happens under load that is running, not merely started.
func (l *load) waitMore(t *testing.T, n int64) {
	t.Helper()
	target := l.asked.Load() + n
	waitUntil(t, 20*time.Second, fmt.Sprintf("%d more conversations", n), func() (bool, string) {
		a := l.asked.Load()
		return a >= target, fmt.Sprintf("%d of %d conversations, %d failed", a, target, l.failed.Load())
	})
}

// halt stops the clients and returns how many conversations ran and
// failed, and the failures.
func (l *load) halt() (asked, failed int64, errs []string) {
	close(l.stop)
	l.wg.Wait()
	return l.asked.Load(), l.failed.Load(), l.errs
}

// TestSendBuffer: limits.send_buffer is each accepted connection's
// SO_SNDBUF (the kernel doubles it for its bookkeeping: ss shows tb), so a
// client that asks and never reads holds a bounded share of kernel memory.
func TestSendBuffer(t *testing.T) {
	ssBin := tool(t, "ss", "/usr/bin/ss", "/bin/ss")
	for _, engine := range concurrentEngines {
		for _, size := range []int{16384, 65536} {
			t.Run(fmt.Sprintf("%s/%d", engine, size), func(t *testing.T) {
				_, addr := startZend(t, nil, "-engine", engine, "-set", fmt.Sprintf("limits.send_buffer=%d", size))
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "Simple is better than?")
				if a, err := bufio.NewReader(c).ReadString('.'); err != nil || a != "Complex." {
					t.Fatalf("answer %q %v", a, err)
				}
				_, port, _ := net.SplitHostPort(addr)
				out, errout, code := runCmd(t, exec.Command(ssBin, "-tmnH", "state", "established", "( sport = :"+port+" )"))
				if code != 0 {
					t.Fatalf("ss: %s", errout)
				}
				m := regexp.MustCompile(`tb(\d+)`).FindStringSubmatch(out)
				if m == nil || m[1] != fmt.Sprint(2*size) {
					t.Fatalf("server socket's send buffer: %q, want tb%d", out, 2*size)
				}
			})
		}
	}
}
