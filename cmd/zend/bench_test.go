package main_test

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// BenchmarkInZen1ExecToAnswer measures what inetd's nowait mode costs a
// client: exec of in-zen1 with a connected socket on fd 0, one question,
// its answer, hang-up and exit. Compare with BenchmarkDaemonConnectToAnswer.
//
//	go test -run '^$' -bench ToAnswer ./cmd/zend
func BenchmarkInZen1ExecToAnswer(b *testing.B) {
	logf := b.TempDir() + "/in-zen.log"
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		client, server := socketPair(b)
		t0 := time.Now()
		cmd := startWithSocket(b, "in-zen1", server, "-log", logf)
		server.Close()
		io.WriteString(client, "Beautiful is better than?")
		a, err := bufio.NewReader(client).ReadString('.')
		if err != nil || a != "Ugly." {
			b.Fatalf("answer %q %v", a, err)
		}
		took = append(took, time.Since(t0))
		client.Close()
		cmd.Wait()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "µs-exec-to-answer-p50")
}

// BenchmarkInZen1SpawnVsHello puts in-zen1's start-up beside the smallest
// Go program's, both static (CGO_ENABLED=0, as the package builds them),
// spawned alternately so the machine's noise hits both alike: in-zen1's
// spawn to answer (socket on fd 0, one question, -log to a file) against
// a hello-world's spawn to exit. The target is a ratio of at most
// 1.5.
//
//	go test -run '^$' -bench SpawnVsHello -benchtime 200x ./cmd/zend
func BenchmarkInZen1SpawnVsHello(b *testing.B) {
	dir := b.TempDir()
	os.WriteFile(dir+"/go.mod", []byte("module hello\n"), 0o644)
	os.WriteFile(dir+"/main.go", []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	for _, c := range [][]string{{"build", "-o", dir + "/hello", "."}, {"build", "-o", dir + "/in-zen1", "zend/cmd/in-zen1"}} {
		cmd := exec.Command("go", c...)
		if c[len(c)-1] == "." {
			cmd.Dir = dir
		}
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-trimpath")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go %v: %v %s", c, err, out)
		}
	}
	logf := dir + "/in-zen.log"
	var inzen, hello []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := exec.Command(dir + "/hello").Run(); err != nil {
			b.Fatal(err)
		}
		hello = append(hello, time.Since(t0))

		client, server := socketPair(b)
		t0 = time.Now()
		cmd := startInetd(b, dir+"/in-zen1", server, nil, "-log", logf)
		server.Close()
		io.WriteString(client, "Beautiful is better than?")
		a, err := bufio.NewReader(client).ReadString('.')
		if err != nil || a != "Ugly." {
			b.Fatalf("answer %q %v", a, err)
		}
		inzen = append(inzen, time.Since(t0))
		client.Close()
		cmd.Wait()
	}
	slices.Sort(inzen)
	slices.Sort(hello)
	p50 := func(d []time.Duration) float64 { return float64(d[len(d)/2].Microseconds()) }
	b.ReportMetric(p50(inzen), "µs-in-zen1-spawn-to-answer-p50")
	b.ReportMetric(p50(hello), "µs-hello-spawn-to-exit-p50")
	b.ReportMetric(p50(inzen)/p50(hello), "ratio")
}

// BenchmarkDaemonConnectToAnswer measures the same conversation with a
// running zend: connect, one question, its answer, hang-up.
func BenchmarkDaemonConnectToAnswer(b *testing.B) {
	addr := freeAddr(b)
	start(b, "zend", nil, "-listen", addr, "-set", "log.level=warn", "run")
	waitDial(b, addr)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		io.WriteString(c, "Beautiful is better than?")
		a, err := bufio.NewReader(c).ReadString('.')
		if err != nil || a != "Ugly." {
			b.Fatalf("answer %q %v", a, err)
		}
		c.Close()
	}
}
