package daemon

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestConnectionsFit: the conversations that fit in the open-file limit
// leave room for zend's reserve, its listeners and, when it serves them,
// the metrics server's descriptors.
func TestConnectionsFit(t *testing.T) {
	for _, c := range []struct {
		nofile             uint64
		listeners, metrics int
		want               int
	}{
		{100, 1, 0, 67}, // TestMaxConnectionsLoweredToFileLimit's case
		{100, 1, metricsFDs, 67 - metricsFDs},
		{200, 1, metricsFDs, 200 - reservedFDs - 1 - metricsFDs},
		{1024, 3, metricsFDs, 1024 - reservedFDs - 3 - metricsFDs},
		{524288, 1, 0, 524288 - reservedFDs - 1},
		{40, 1, 0, 7},
		{40, 1, metricsFDs, 1}, // never below one
		{0, 1, metricsFDs, 1},
		{^uint64(0), 1, metricsFDs, 1<<30 - reservedFDs - 1 - metricsFDs}, // RLIM_INFINITY
	} {
		if got := connectionsFit(c.nofile, c.listeners, c.metrics); got != c.want {
			t.Errorf("connectionsFit(%d, %d, %d) = %d, want %d", c.nofile, c.listeners, c.metrics, got, c.want)
		}
	}
	if metricsFDs != 1+metricsMaxConns+metricsMaxScrapes*metricsScrapeFDs {
		t.Errorf("metricsFDs = %d does not count the listener, %d connections and %d scrapes", metricsFDs, metricsMaxConns, metricsMaxScrapes)
	}
}

// TestMetricsHTTPTimeouts: every timeout of the metrics server is set.
func TestMetricsHTTPTimeouts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, _ := metricsHTTP(ln, http.NotFoundHandler(), nil)
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout,
		"ReadTimeout":       srv.ReadTimeout,
		"WriteTimeout":      srv.WriteTimeout,
		"IdleTimeout":       srv.IdleTimeout,
	} {
		if d <= 0 {
			t.Errorf("metrics server %s = %v", name, d)
		}
	}
}

// TestMetricsIdleConnectionsFreeTheirSlot: keep-alive clients fill the
// metrics server's metricsMaxConns; one more waits, unanswered, in the
// listen backlog. The idle timeout (shortened here) closes the idle ones,
// and the waiting client is served.
func TestMetricsIdleConnectionsFreeTheirSlot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lim := metricsHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "zend_connections_open 0\n")
	}), nil)
	srv.IdleTimeout = 100 * time.Millisecond // not to wait metricsIdleTimeout
	go srv.Serve(lim)
	defer srv.Close()

	get := func(c net.Conn) {
		t.Helper()
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: zend\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	type client struct {
		c net.Conn
		r *bufio.Reader
	}
	var held []client
	for i := 0; i <= metricsMaxConns; i++ {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		held = append(held, client{c, bufio.NewReader(c)})
	}
	waiting := held[metricsMaxConns]
	held = held[:metricsMaxConns]
	for i, h := range held {
		get(h.c)
		resp, err := http.ReadResponse(h.r, nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("client %d: %s, close %v", i, resp.Status, resp.Close)
		}
	}
	get(waiting.c)
	for i, h := range held {
		if _, err := h.r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle client %d: %v, want EOF (closed by the idle timeout)", i, err)
		}
	}
	resp, err := http.ReadResponse(waiting.r, nil)
	if err != nil {
		t.Fatalf("the client over the cap is not served once the others idled out: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the client over the cap: %s", resp.Status)
	}
}
