package daemon

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"zend/protocol"
)

// What the metrics port may cost. It must not take the main port down: its
// connections are capped, and the descriptors it may hold (metricsFDs) are
// taken out of the open-file limit before limits.max_connections is fitted
// to it (fitNoFile), beside reservedFDs and the listeners.
const (
	// metricsMaxConns is how many metrics connections are open at once.
	// Above it zend stops accepting on the metrics port and new clients
	// wait in the kernel's listen backlog, which costs zend no descriptor.
	// A Prometheus server keeps one connection; 16 leave room for a few
	// servers and people with curl.
	metricsMaxConns = 16
	// metricsMaxScrapes is how many scrapes run at once; more are answered
	// 503 at once (promhttp's MaxRequestsInFlight).
	metricsMaxScrapes = 4
	// metricsScrapeFDs is how many descriptors one scrape opens at once:
	// the process collector reads /proc/self/stat, fd/, limits and
	// net/netstat one after the other; 2 leaves a margin.
	metricsScrapeFDs = 2
	// metricsFDs is the most descriptors the metrics server holds: its
	// listener, its connections and what its scrapes open.
	metricsFDs = 1 + metricsMaxConns + metricsMaxScrapes*metricsScrapeFDs

	// metricsReadHeaderTimeout closes a connection whose request headers
	// are not complete this long after it was accepted, or after its
	// previous response (a client that connects and sends nothing).
	metricsReadHeaderTimeout = 5 * time.Second
	// metricsReadTimeout bounds the reading of a whole request.
	metricsReadTimeout = 10 * time.Second
	// metricsWriteTimeout bounds a scrape, from the end of its request's
	// headers to the end of its response.
	metricsWriteTimeout = 30 * time.Second
	// metricsIdleTimeout closes a keep-alive connection idle this long
	// between requests. It is above Prometheus's default scrape interval
	// (1m), so that a scraper keeps its connection, and short enough that
	// abandoned connections give their slot back.
	metricsIdleTimeout = 90 * time.Second
)

// version is set by the build of a release or a package:
//
//	go build -ldflags "-X zend/daemon.version=0.2.0" ./cmd/zend
var version string

// Version is zend's version, for zend version and zend_build_info: the
// one the build set (the Debian package sets its own); else the module's
// version when built with go install MODULE@VERSION; else "devel", with
// the commit when the build recorded one ("devel-0123456789ab", and
// "-dirty" for uncommitted changes).
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	v, dirty := "devel", false
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			v += "-" + s.Value[:12]
		case s.Key == "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		v += "-dirty"
	}
	return v
}

// metricsServer serves Prometheus metrics of an instance at /metrics.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// listenMetrics binds addr (before privileges are dropped, as the listen
// sockets are); serve starts answering scrapes.
func listenMetrics(addr string) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	if v := os.Getenv(envMetricsFD); v != "" { // handed over by an upgrade
		os.Unsetenv(envMetricsFD)
		if fd, err := strconv.Atoi(v); err == nil {
			f := os.NewFile(uintptr(fd), "metrics")
			ln, err := net.FileListener(f)
			f.Close()
			if err == nil {
				return &metricsServer{ln: ln}, nil
			}
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	return &metricsServer{ln: ln}, nil
}

func (m *metricsServer) serve(in *instance, log *slog.Logger) {
	if m == nil {
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&zendCollector{in: in},
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelError),
		MaxRequestsInFlight: metricsMaxScrapes,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "zend serves its metrics at /metrics", http.StatusNotFound)
	})
	srv, ln := metricsHTTP(m.ln, mux, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	m.srv = srv
	log.Info("serving metrics", "addr", m.ln.Addr().String(), "path", "/metrics", "conn_limit", metricsMaxConns)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "err", err.Error())
		}
	}()
}

// metricsHTTP returns the metrics HTTP server, with its timeouts, and ln
// capped at metricsMaxConns connections: the server is to serve the
// returned listener.
func metricsHTTP(ln net.Listener, h http.Handler, errorLog *stdlog.Logger) (*http.Server, net.Listener) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: metricsReadHeaderTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		ErrorLog:          errorLog,
	}
	return srv, netutil.LimitListener(ln, metricsMaxConns)
}

// fd returns the metrics listener's descriptor, for an upgrade; -1 if
// none.
func (m *metricsServer) fd() int {
	if m == nil {
		return -1
	}
	fd, err := rawFD(m.ln)
	if err != nil {
		return -1
	}
	return fd
}

func (m *metricsServer) close() {
	if m == nil {
		return
	}
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m.srv.Shutdown(ctx)
	}
	m.ln.Close()
}

var (
	descOpen     = prometheus.NewDesc("zend_connections_open", "Conversations open now.", nil, nil)
	descAccepted = prometheus.NewDesc("zend_connections_accepted_total", "Connections accepted since start.", nil, nil)
	descAnswers  = prometheus.NewDesc("zend_answers_total", "Questions answered, by answer.", []string{"answer"}, nil)
	descUnknown  = prometheus.NewDesc("zend_unknown_questions_total", "Questions answered with the error answer.", nil, nil)
	descRefused  = prometheus.NewDesc("zend_refused_connections_total", "Connections refused, by reason.", []string{"reason"}, nil)
	descLatency  = prometheus.NewDesc("zend_question_duration_seconds", "Time from a question's last byte read to its answer written.", nil, nil)
	descReloads  = prometheus.NewDesc("zend_reloads_total", "Configuration reloads, by result.", []string{"result"}, nil)
	descBuild    = prometheus.NewDesc("zend_build_info", "Build of the running zend (always 1).", []string{"version", "goversion", "engine"}, nil)
	descStarted  = prometheus.NewDesc("zend_start_time_seconds", "When this zend started, in Unix time.", nil, nil)
	descReopen   = prometheus.NewDesc("zend_log_reopen_failures_total", "Failed attempts to reopen the log file (SIGUSR1, or the file renamed or removed); the log goes on in the old file meanwhile.", nil, nil)
)

// zendCollector reads the server's counters at each scrape, so the
// protocol package needs no metrics library.
type zendCollector struct{ in *instance }

func (c *zendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpen, descAccepted, descAnswers, descUnknown, descRefused, descLatency, descReloads, descBuild, descStarted, descReopen} {
		ch <- d
	}
}

func (c *zendCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.in.svc.Metrics()
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(m.Open))
	ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(m.Accepted))
	for ans, n := range m.Answers {
		ch <- prometheus.MustNewConstMetric(descAnswers, prometheus.CounterValue, float64(n), ans)
	}
	ch <- prometheus.MustNewConstMetric(descUnknown, prometheus.CounterValue, float64(m.Unknown))
	for reason, n := range m.Refused {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), reason)
	}
	buckets := map[float64]uint64{}
	for i, b := range protocol.LatencyBounds {
		buckets[b] = m.LatencyCounts[i]
	}
	ch <- prometheus.MustNewConstHistogram(descLatency, m.LatencyCount, m.LatencySum, buckets)
	ok, failed := c.in.reloadCounts()
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(ok), "ok")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(failed), "failed")
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, Version(), runtime.Version(), c.in.svc.Engine())
	ch <- prometheus.MustNewConstMetric(descStarted, prometheus.GaugeValue, float64(c.in.started.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descReopen, prometheus.CounterValue, float64(c.in.sink.ReopenFailures()))
}
