package main_test

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMetrics scrapes a live zend and checks the exposition with the
// real promtool.
func TestMetrics(t *testing.T) {
	promtool := tool(t, "promtool", "/usr/bin/promtool")
	for _, engine := range concurrentEngines {
		t.Run(engine, func(t *testing.T) {
			maddr := freeAddr(t)
			cfg := writeFile(t, t.TempDir(), "zend.toml", "[access]\ndeny = [\"127.0.0.9\"]\n")
			p, addr := startZend(t, nil, "-c", cfg, "-listen", "127.0.0.1:0", "-engine", engine, "-set", "metrics.listen="+maddr)
			p.waitLog(t, `msg="serving metrics"`)
			client(t, addr)
			askOnce(t, addr, "Flat is better than nested?")
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}, Timeout: 5 * time.Second}
			if c, err := d.Dial("tcp", addr); err == nil {
				io.ReadAll(c)
				c.Close()
			}
			p.cmd.Process.Signal(syscall.SIGHUP)
			p.waitLog(t, `msg="configuration reloaded"`)
			resp, err := http.Get("http://" + maddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text := string(body)
			for _, want := range []string{
				`zend_answers_total{answer="Ugly."} 1`,
				`zend_unknown_questions_total 1`,
				`zend_refused_connections_total{reason="access"} 1`,
				`zend_reloads_total{result="ok"} 1`,
				`zend_question_duration_seconds_count 4`,
				`zend_connections_open 0`,
				`zend_build_info{engine="` + engine + `"`,
				`process_resident_memory_bytes`,
			} {
				if !strings.Contains(text, want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			if !regexp.MustCompile(`zend_connections_accepted_total [3-9]`).MatchString(text) {
				t.Errorf("accepted connections not counted:\n%s", text)
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Fatalf("promtool check metrics: %v\n%s", err, out)
			}
		})
	}
}
