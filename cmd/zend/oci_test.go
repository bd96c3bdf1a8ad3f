package main_test

// The OCI image (packaging/oci) under a real podman: built offline by the
// shipped script, run with a published port, a mounted configuration and
// ZEND_* variables, checked by its own HEALTHCHECK and stopped as podman
// stops it. crun cannot run containers on these machines (cgroups in
// hybrid mode), so every container runs on runc, and with rlimits within
// the machine's hard limits.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// podmanCtl runs podman on runc, every call bounded in time.
type podmanCtl struct {
	bin   string
	image string
}

// run runs podman with args for at most d and returns its output and exit
// code; a call that takes longer fails the test.
func (p *podmanCtl) run(t *testing.T, d time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--runtime", "runc"}, args...)...)
	cmd.Env = cleanEnv()
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("podman %s: no result within %v\n%s%s", strings.Join(args, " "), d, o.String(), e.String())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("podman %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// must runs podman like run and fails the test on a non-zero exit.
func (p *podmanCtl) must(t *testing.T, d time.Duration, args ...string) string {
	t.Helper()
	out, errout, code := p.run(t, d, args...)
	if code != 0 {
		t.Fatalf("podman %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errout)
	}
	return out
}

// start runs the image detached as container name with extra podman run
// options, and removes the container when the test ends.
func (p *podmanCtl) start(t *testing.T, name string, opts ...string) {
	t.Helper()
	t.Cleanup(func() { p.run(t, 60*time.Second, "rm", "-f", "-t", "0", name) })
	args := append([]string{"run", "-d", "--name", name,
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"}, opts...)
	p.must(t, 60*time.Second, append(args, p.image)...)
}

// logs returns what the container wrote to stdout and to stderr.
func (p *podmanCtl) logs(t *testing.T, name string) (stdout, stderr string) {
	t.Helper()
	out, errout, code := p.run(t, 30*time.Second, "logs", name)
	if code != 0 {
		t.Fatalf("podman logs %s: exit %d: %s", name, code, errout)
	}
	return out, errout
}

// waitLog waits up to 20 s for the container's stderr to match re.
func (p *podmanCtl) waitLog(t *testing.T, name, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	var errout string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, errout = p.logs(t, name); rx.MatchString(errout) {
			return
		}
	}
	t.Fatalf("container %s logged no %q within 20 s; its log:\n%s", name, re, errout)
}

// askContainer asks q on a new connection to addr, retrying for up to 20 s
// while the published port does not answer yet (the container starting).
func askContainer(t *testing.T, addr, q string) string {
	t.Helper()
	var last error
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			last = err
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, q)
		a, err := bufio.NewReader(c).ReadString('.')
		c.Close()
		if err == nil {
			return a
		}
		last = err
	}
	t.Fatalf("no answer to %q from %s within 20 s: %v", q, addr, last)
	return ""
}

func TestContainerImage(t *testing.T) {
	needSystem(t, "builds the OCI image with packaging/oci/build.sh and runs it under podman: it answers on a published port as a non-root user, reads a mounted /etc/zend.toml and ZEND_* variables, its HEALTHCHECK passes, and podman stop drains it to exit 0")
	p := &podmanCtl{
		bin:   tool(t, "podman", "/usr/bin/podman"),
		image: fmt.Sprintf("localhost/zend-test:%d", os.Getpid()),
	}
	tool(t, "runc", "/usr/bin/runc", "/usr/sbin/runc")
	prefix := fmt.Sprintf("zend-test-%d-", os.Getpid())

	// Build with the shipped script, offline (FROM scratch, --pull=never).
	t.Cleanup(func() { p.run(t, 60*time.Second, "rmi", "-f", p.image) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "../../packaging/oci/build.sh", p.image)
	build.Env = cleanEnv()
	var bout, berr strings.Builder
	build.Stdout, build.Stderr = &bout, &berr
	if err := build.Run(); err != nil || strings.TrimSpace(bout.String()) != p.image {
		t.Fatalf("build.sh %s: %v (printed %q)\n%s", p.image, err, bout.String(), berr.String())
	}

	// What the image declares for whoever runs it.
	var img []struct {
		Config struct {
			User         string
			ExposedPorts map[string]any
			Env          []string
			Entrypoint   []string
			Cmd          []string
			StopSignal   string
		}
		HealthCheck *struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(p.must(t, 30*time.Second, "image", "inspect", p.image)), &img); err != nil || len(img) != 1 {
		t.Fatalf("podman image inspect: %v (%d images)", err, len(img))
	}
	cfg := img[0].Config
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", cfg.User)
	}
	if _, ok := cfg.ExposedPorts["1060/tcp"]; !ok {
		t.Errorf("image exposes %v, want 1060/tcp", cfg.ExposedPorts)
	}
	if cfg.StopSignal != "SIGTERM" {
		t.Errorf("image stop signal %q, want SIGTERM", cfg.StopSignal)
	}
	if got := strings.Join(append(cfg.Entrypoint, cfg.Cmd...), " "); got != "/usr/sbin/zend run" {
		t.Errorf("image runs %q, want /usr/sbin/zend run", got)
	}
	if hc := img[0].HealthCheck; hc == nil || len(hc.Test) < 2 || hc.Test[1] != "/usr/bin/zen-client" {
		t.Errorf("image health check %+v, want CMD /usr/bin/zen-client ...", hc)
	}

	t.Run("defaults", func(t *testing.T) {
		name := prefix + "defaults"
		port := strconv.Itoa(freePort(t))
		// Read-only: zend run writes nothing but its log to stderr.
		p.start(t, name, "--read-only", "-p", "127.0.0.1:"+port+":1060")
		addr := "127.0.0.1:" + port
		if a := askContainer(t, addr, "Beautiful is better than?"); a != "Ugly." {
			t.Fatalf("answer %q, want Ugly.", a)
		}
		p.waitLog(t, name, `msg="no configuration file, running on embedded defaults" missing=/etc/zend.toml`)

		// Not root, by podman's account and by the kernel's.
		if out := p.must(t, 30*time.Second, "top", name, "user", "group"); !regexp.MustCompile(`(?m)^zend\s+zend\s*$`).MatchString(out) {
			t.Errorf("podman top: %q, want user and group zend", out)
		}
		pid := strings.TrimSpace(p.must(t, 30*time.Second, "inspect", "--format", "{{.State.Pid}}", name))
		status, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^Uid:\s+65532\s+65532\s+65532\s+65532$`).Match(status) {
			t.Errorf("zend (pid %s) is not uid 65532:\n%s", pid, status)
		}

		// The image's HEALTHCHECK, run as podman runs it.
		if out, errout, code := p.run(t, 60*time.Second, "healthcheck", "run", name); code != 0 {
			t.Errorf("podman healthcheck run: exit %d: %s%s", code, out, errout)
		}

		// A conversation open across the stop: podman's SIGTERM drains it
		// (closed at its question boundary), zend exits 0.
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		io.WriteString(c, "Explicit is better than?")
		if a, err := r.ReadString('.'); err != nil || a != "Implicit." {
			t.Fatalf("open conversation: %q %v", a, err)
		}
		// Whether zend drained by itself, rather than being killed when
		// podman's 20 s ran out, is its exit code (0, not 137) and its
		// "stopped" line, checked below: no clock is needed.
		p.must(t, 60*time.Second, "stop", "-t", "20", name)
		if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
			t.Errorf("after the stop the conversation read %q, %v; want a clean close", rest, err)
		}
		if code := strings.TrimSpace(p.must(t, 30*time.Second, "inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
			t.Errorf("exit code %s after podman stop, want 0", code)
		}
		out, errout := p.logs(t, name)
		if out != "" {
			t.Errorf("zend wrote to stdout, want its log on stderr only: %q", out)
		}
		for _, re := range []string{`msg="shutting down" reason=terminated open=1`, `msg=stopped finished=1 cut_off=0`} {
			if !regexp.MustCompile(re).MatchString(errout) {
				t.Errorf("log lacks %q:\n%s", re, errout)
			}
		}
	})

	// A configuration file as an operator mounts one: owned by a host
	// user who is not the container's. Non-root zend only needs to read
	// it; an unreadable one stops it at start with the reason.
	t.Run("mounted config", func(t *testing.T) {
		dir := t.TempDir()
		file := writeFile(t, dir, "zend.toml", "[answers]\n\"Readability counts?\" = \"Yes.\"\n")
		if err := os.Chown(file, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		name := prefix + "config"
		port := strconv.Itoa(freePort(t))
		p.start(t, name, "-v", file+":/etc/zend.toml:ro", "-p", "127.0.0.1:"+port+":1060")
		addr := "127.0.0.1:" + port
		for q, want := range map[string]string{"Readability counts?": "Yes.", "Beautiful is better than?": "Ugly."} {
			if a := askContainer(t, addr, q); a != want {
				t.Errorf("answer to %q: %q, want %q", q, a, want)
			}
		}
		p.must(t, 60*time.Second, "stop", "-t", "20", name)

		secret := writeFile(t, dir, "secret.toml", "[answers]\n\"Readability counts?\" = \"Yes.\"\n")
		os.Chmod(secret, 0o600)
		if err := os.Chown(secret, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		name = prefix + "unreadable"
		p.start(t, name, "-v", secret+":/etc/zend.toml:ro")
		if code := strings.TrimSpace(p.must(t, 30*time.Second, "wait", name)); code != "1" {
			t.Errorf("exit code %s with an unreadable /etc/zend.toml, want 1", code)
		}
		if _, errout := p.logs(t, name); !strings.Contains(errout, "/etc/zend.toml: permission denied") {
			t.Errorf("log does not say why: %q", errout)
		}
	})

	// ZEND_* on top of the image's defaults: another port, JSON logs. The
	// image's health check asks the default port, so it fails here, as it
	// fails for any zend that does not answer.
	t.Run("environment", func(t *testing.T) {
		name := prefix + "env"
		port := strconv.Itoa(freePort(t))
		p.start(t, name, "-e", "ZEND_LISTEN=0.0.0.0:1061", "-e", "ZEND_LOG_FORMAT=json", "-p", "127.0.0.1:"+port+":1061")
		if a := askContainer(t, "127.0.0.1:"+port, "Simple is better than?"); a != "Complex." {
			t.Fatalf("answer %q, want Complex.", a)
		}
		p.waitLog(t, name, `"msg":"listening","addr":"0.0.0.0:1061"`)
		if out, errout, code := p.run(t, 60*time.Second, "healthcheck", "run", name); code == 0 {
			t.Errorf("podman healthcheck run passed with nothing on port 1060: %s%s", out, errout)
		}
		p.must(t, 60*time.Second, "stop", "-t", "20", name)
		if code := strings.TrimSpace(p.must(t, 30*time.Second, "inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
			t.Errorf("exit code %s after podman stop, want 0", code)
		}
	})
}
