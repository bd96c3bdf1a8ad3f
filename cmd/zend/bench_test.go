package main_test

import (
	"bufio"
	"io"
	"net"
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
