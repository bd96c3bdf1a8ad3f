package protocol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLimits are generous limits for tests that do not test a limit (zend's
// defaults live in config; these are the tests' own).
func testLimits() Limits {
	return Limits{
		MaxConnections:   2000,
		MaxQuestionBytes: 1024,
		IdleTimeout:      5 * time.Minute,
		QuestionTimeout:  30 * time.Second,
		WriteTimeout:     30 * time.Second,
	}
}

// startServer serves engine on a loopback port and closes it at the end.
func startServer(t *testing.T, engine Engine, workers int, st Settings) (*Server, string) {
	t.Helper()
	if st.Limits == (Limits{}) {
		st.Limits = testLimits()
	}
	srv, err := NewServer(engine, workers, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return srv, ln.Addr().String()
}

// dial connects to addr with a deadline of 10 s on everything.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends q and reads len(want) bytes, which must be want.
func ask(t testing.TB, c net.Conn, r *bufio.Reader, q, want string) {
	t.Helper()
	if _, err := io.WriteString(c, q); err != nil {
		t.Fatalf("send %q: %v", q, err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("answer to %q: %v (got %q)", q, err, got)
	}
	if string(got) != want {
		t.Fatalf("answer to %q = %q, want %q", q, got, want)
	}
}

// expectClosed waits until the server closes c (EOF or reset) and fails if
// it sends anything first or does not close within 5 s.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64)
	n, err := c.Read(b)
	if n > 0 {
		t.Fatalf("read %q, want the connection closed", b[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after 5 s")
	}
}

// engines is every engine, with the workers each test runs it with: the
// same end-to-end tests run against each.
var engines = []struct {
	engine  Engine
	workers int
}{
	{EngineSingle, 1},
	{EnginePool, 4},
	{EngineGoroutine, 0},
	{EngineEventLoop, 2},
	{EngineURing, 2},
}

func TestAnswers(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			_, addr := startServer(t, e.engine, e.workers, Settings{Answers: NewAnswers(map[string]string{
				"Readability counts?":       "Yes.",
				"Beautiful is better than?": "Pretty.", // overrides a built-in
			})})
			c := dial(t, addr)
			r := bufio.NewReader(c)
			ask(t, c, r, "Explicit is better than?", "Implicit.")
			ask(t, c, r, "Simple is better than?", "Complex.")
			ask(t, c, r, "Beautiful is better than?", "Pretty.")
			ask(t, c, r, "Readability counts?", "Yes.")
			ask(t, c, r, "?", UnknownAnswer)
			ask(t, c, r, "beautiful is better than?", UnknownAnswer)
			// Whitespace before a question, as typed into nc and Enter.
			ask(t, c, r, "\r\n  \tSimple is better than?", "Complex.")
			ask(t, c, r, "\nExplicit is better than?\n", "Implicit.")
		})
	}
}

// questionMix returns n random questions and the answers they get.
func questionMix(rng *rand.Rand, n int) (qs, answers []byte) {
	table := []struct{ q, a string }{
		{"Beautiful is better than?", "Ugly."},
		{"Explicit is better than?", "Implicit."},
		{"Simple is better than?", "Complex."},
		{"?", UnknownAnswer},
		{"Flat is better than nested?", UnknownAnswer},
		{"\r\nSimple is better than?", "Complex."},
	}
	for i := 0; i < n; i++ {
		e := table[rng.IntN(len(table))]
		qs = append(qs, e.q...)
		answers = append(answers, e.a...)
	}
	return qs, answers
}

func TestPipelined(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			_, addr := startServer(t, e.engine, e.workers, Settings{})
			c := dial(t, addr)
			qs, want := questionMix(rand.New(rand.NewPCG(1, 2)), 5000)
			go func() { c.Write(qs) }() // the answers are read while writing
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read %d answer bytes: %v", len(want), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("pipelined answers differ from the questions' answers")
			}
		})
	}
}

// TestSplitQuestions feeds questions through net.Pipe, whose reads return
// exactly what each write wrote, cut at every possible size.
func TestSplitQuestions(t *testing.T) {
	qs, want := questionMix(rand.New(rand.NewPCG(3, 4)), 60)
	for _, chunk := range []int{1, 2, 3, 7, 25, 26, 100, 4096, 5000} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			srv, err := NewServer(EngineGoroutine, 1, Settings{Limits: testLimits()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			client, server := net.Pipe()
			done := make(chan struct{})
			go func() { srv.ServeConn(server); close(done) }()
			client.SetDeadline(time.Now().Add(10 * time.Second))
			go func() {
				for b := qs; len(b) > 0; {
					n := min(chunk, len(b))
					if _, err := client.Write(b[:n]); err != nil {
						return
					}
					b = b[n:]
				}
			}()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("answers differ with reads of %d bytes", chunk)
			}
			client.Close()
			<-done
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			_, addr := startServer(t, e.engine, e.workers, Settings{})
			clients := map[Engine]int{EngineSingle: 20, EnginePool: 100, EngineGoroutine: 500, EngineEventLoop: 500, EngineURing: 500}[e.engine]
			var wg sync.WaitGroup
			errc := make(chan error, clients)
			for i := 0; i < clients; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						errc <- err
						return
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(20 * time.Second))
					r := bufio.NewReader(c)
					qs, want := questionMix(rand.New(rand.NewPCG(uint64(i), 9)), 20)
					for len(qs) > 0 {
						// one question at a time, as the chapter's client
						_, end, _ := Split(qs, 0)
						if _, err := c.Write(qs[:end]); err != nil {
							errc <- err
							return
						}
						qs = qs[end:]
						a, err := r.ReadBytes('.')
						if err != nil {
							errc <- err
							return
						}
						if !bytes.HasPrefix(want, a) {
							errc <- fmt.Errorf("client %d: got %q", i, a)
							return
						}
						want = want[len(a):]
					}
				}(i)
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
		})
	}
}

func TestQuestionTooLong(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			lim := testLimits()
			lim.MaxQuestionBytes = 100
			_, addr := startServer(t, e.engine, e.workers, Settings{Limits: lim})
			c := dial(t, addr)
			r := bufio.NewReader(c)
			ask(t, c, r, strings.Repeat("x", 99)+"?", UnknownAnswer) // exactly the limit
			// Answers before the long question still arrive.
			c.Write([]byte("Simple is better than?" + strings.Repeat("y", 5000)))
			got := make([]byte, len("Complex."))
			if _, err := io.ReadFull(r, got); err != nil || string(got) != "Complex." {
				t.Fatalf("answer before the long question: %q, %v", got, err)
			}
			expectClosed(t, c)
		})
	}
}

// concurrentEngines are the engines that serve every client at once.
var concurrentEngines = []Engine{EngineGoroutine, EngineEventLoop, EngineURing}

func TestBinaryInput(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) { testBinaryInput(t, e) })
	}
}

func testBinaryInput(t *testing.T, e Engine) {
	_, addr := startServer(t, e, 0, Settings{})
	c := dial(t, addr)
	rng := rand.New(rand.NewPCG(5, 6))
	var in []byte
	questions := 0
	for len(in) < 20000 {
		b := byte(rng.IntN(256))
		if b == '?' {
			continue
		}
		in = append(in, b)
		if rng.IntN(50) == 0 {
			in = append(in, '?')
			questions++
		}
	}
	in = append(in, '?')
	questions++
	go c.Write(in)
	want := bytes.Repeat([]byte(UnknownAnswer), questions)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("binary questions did not each get the error answer")
	}
	r := bufio.NewReader(c)
	ask(t, c, r, "Simple is better than?", "Complex.")
}

// TestIdleClientsDoNotBlock holds idle connections open and checks that
// another client is still served, on the engines built for that.
func TestIdleClientsDoNotBlock(t *testing.T) {
	for _, tc := range []struct {
		engine  Engine
		workers int
		idle    int
	}{
		{EngineGoroutine, 0, 200},
		{EngineEventLoop, 2, 200},
		{EngineURing, 2, 200},
		{EnginePool, 4, 3}, // one worker stays free
	} {
		t.Run(string(tc.engine), func(t *testing.T) {
			srv, addr := startServer(t, tc.engine, tc.workers, Settings{})
			for i := 0; i < tc.idle; i++ {
				dial(t, addr)
			}
			waitFor(t, func() bool { return srv.Stats().Open == int64(tc.idle) })
			c := dial(t, addr)
			ask(t, c, bufio.NewReader(c), "Beautiful is better than?", "Ugly.")
		})
	}
}

// waitFor polls cond for up to 10 s, and fails the test if it does not
// hold by then.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

func TestTimeouts(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		for _, e := range engines {
			t.Run(string(e.engine), func(t *testing.T) {
				lim := testLimits()
				lim.IdleTimeout = 200 * time.Millisecond
				_, addr := startServer(t, e.engine, e.workers, Settings{Limits: lim})
				c := dial(t, addr)
				ask(t, c, bufio.NewReader(c), "Simple is better than?", "Complex.")
				expectClosed(t, c)
			})
		}
	})
	t.Run("question", func(t *testing.T) {
		for _, e := range engines {
			t.Run(string(e.engine), func(t *testing.T) {
				lim := testLimits()
				lim.IdleTimeout = time.Hour
				lim.QuestionTimeout = 300 * time.Millisecond
				_, addr := startServer(t, e.engine, e.workers, Settings{Limits: lim})
				c := dial(t, addr)
				// A slow-drip client: a byte every 50 ms never reaches its '?'.
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(50 * time.Millisecond):
							if _, err := c.Write([]byte("x")); err != nil {
								return
							}
						}
					}
				}()
				expectClosed(t, c)
			})
		}
	})
	for _, e := range concurrentEngines {
		t.Run("write/"+string(e), func(t *testing.T) { testWriteTimeout(t, e) })
	}
}

func testWriteTimeout(t *testing.T, e Engine) {
	{
		lim := testLimits()
		lim.WriteTimeout = 300 * time.Millisecond
		_, addr := startServer(t, e, 0, Settings{Limits: lim})
		c := dial(t, addr)
		// Ask many questions and never read: the answers fill the socket
		// buffers, the server's write blocks, then times out.
		flood := bytes.Repeat([]byte("?"), 1<<20)
		werr := make(chan error, 1)
		go func() {
			var err error
			for i := 0; i < 64 && err == nil; i++ {
				_, err = c.Write(flood)
			}
			werr <- err
		}()
		// Meanwhile another client is served.
		other := dial(t, addr)
		ask(t, other, bufio.NewReader(other), "Explicit is better than?", "Implicit.")
		select {
		case err := <-werr:
			if err == nil {
				t.Fatal("64 MiB of questions were taken by a server whose answers are never read")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("server still reading from a client that does not read its answers")
		}
	}
}

// TestMaxConnections checks that above the limit zend stops accepting:
// the next client waits in the backlog and is served once a slot frees.
func TestMaxConnections(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) { testMaxConnections(t, e) })
	}
}

func testMaxConnections(t *testing.T, e Engine) {
	lim := testLimits()
	lim.MaxConnections = 2
	srv, addr := startServer(t, e, 0, Settings{Limits: lim})
	a, b := dial(t, addr), dial(t, addr)
	waitFor(t, func() bool { return srv.Stats().Open == 2 })
	third := dial(t, addr) // completes in the kernel's backlog
	io.WriteString(third, "Simple is better than?")
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := third.Read(make([]byte, 16)); n > 0 || err == nil {
		t.Fatalf("third client answered above max_connections (%d bytes, %v)", n, err)
	}
	if got := srv.Stats().Total; got != 2 {
		t.Fatalf("accepted %d connections, want 2", got)
	}
	a.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len("Complex."))
	if _, err := io.ReadFull(third, got); err != nil || string(got) != "Complex." {
		t.Fatalf("after a slot freed: %q, %v", got, err)
	}
	_ = b
}

func TestUpdateAnswersOnOpenConnection(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			srv, addr := startServer(t, e.engine, e.workers, Settings{})
			c := dial(t, addr)
			r := bufio.NewReader(c)
			ask(t, c, r, "Readability counts?", UnknownAnswer)
			st := srv.Settings()
			st.Answers = NewAnswers(map[string]string{"Readability counts?": "Yes."})
			srv.Update(st)
			ask(t, c, r, "Readability counts?", "Yes.")
		})
	}
}

// TestShutdownDrains checks that questions asked before Shutdown are all
// answered, that a question in the middle of arriving is finished, and that
// each connection is then closed.
func TestShutdownDrains(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			clients := map[Engine]int{EngineSingle: 1, EnginePool: 4, EngineGoroutine: 50, EngineEventLoop: 50, EngineURing: 50}[e.engine]
			srv, addr := startServer(t, e.engine, e.workers, Settings{AnswerDelay: 300 * time.Millisecond})
			conns := make([]net.Conn, clients)
			for i := range conns {
				conns[i] = dial(t, addr)
				io.WriteString(conns[i], "Beautiful is better than?")
			}
			partial := dial(t, addr)
			concurrent := e.engine == EngineGoroutine || e.engine == EngineEventLoop || e.engine == EngineURing
			if concurrent {
				// A whole question, then the start of the next in the
				// same segment: once the first is looked up, the server
				// has read the second's start too.
				io.WriteString(partial, "Readability counts?Simple is")
			}
			// Asked means read: every question is looked up (and counted)
			// when read, before its answer_delay.
			waitFor(t, func() bool {
				m := srv.Metrics()
				return m.Answers["Ugly."] == uint64(clients) && (!concurrent || m.Unknown == 1)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan DrainResult, 1)
			go func() {
				res, err := srv.Shutdown(ctx)
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
				done <- res
			}()
			if concurrent {
				waitFor(t, srv.draining.Load) // the rest comes during the drain
				io.WriteString(partial, " better than?")
				want := UnknownAnswer + "Complex."
				got := make([]byte, len(want))
				if _, err := io.ReadFull(partial, got); err != nil || string(got) != want {
					t.Errorf("question finished during the drain: %q, %v", got, err)
				}
			}
			for i, c := range conns {
				got := make([]byte, len("Ugly."))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != "Ugly." {
					t.Errorf("client %d: answer asked before shutdown: %q, %v", i, got, err)
				}
				expectClosed(t, c)
			}
			res := <-done
			if res.Cut != 0 {
				t.Errorf("drain cut %d conversations, want 0 (%+v)", res.Cut, res)
			}
			if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				t.Error("still accepting after Shutdown")
			}
		})
	}
}

func TestShutdownDeadlineCuts(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) { testShutdownDeadlineCuts(t, e) })
	}
}

func testShutdownDeadlineCuts(t *testing.T, e Engine) {
	srv, addr := startServer(t, e, 0, Settings{})
	c := dial(t, addr)
	// A question answered, then one that never sends its '?', in the
	// same segment: once the answer comes the server has read both.
	ask(t, c, bufio.NewReader(c), "Beautiful is better than?Never finished", "Ugly.")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if res.Cut != 1 || res.Open != 1 {
		t.Fatalf("result %+v, want 1 open, 1 cut", res)
	}
	expectClosed(t, c)
}

func TestServeAfterShutdown(t *testing.T) {
	srv, err := NewServer(EngineGoroutine, 1, Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close = %v, want ErrServerClosed", err)
	}
}

func TestNewServerUnknownEngine(t *testing.T) {
	if _, err := NewServer("threads", 1, Settings{}, nil); err == nil {
		t.Fatal("unknown engine accepted")
	}
}
