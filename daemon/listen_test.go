package daemon

import (
	"net"
	"testing"
	"time"
)

// TestListenBacklog checks the backlog by its effect: connections that
// nobody accepts complete in the kernel only while the accept queue has
// room. With the system maximum a burst of clients all connect; with a
// backlog of 1 the third one cannot.
func TestListenBacklog(t *testing.T) {
	tests := []struct {
		name    string
		backlog int
		dials   int
		wantOK  int // dials that must complete
		wantAll bool
	}{
		// 0 means net.core.somaxconn: a burst of 200 all complete.
		{"system maximum", 0, 200, 200, true},
		// A backlog of 1 holds at most 2 (Linux allows backlog+1).
		{"backlog 1", 1, 4, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := Listen("127.0.0.1:0", tt.backlog)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ok := 0
			for i := 0; i < tt.dials; i++ {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 500*time.Millisecond)
				if err != nil {
					continue
				}
				defer c.Close()
				ok++
			}
			if tt.wantAll && ok != tt.wantOK || !tt.wantAll && ok > tt.wantOK {
				t.Fatalf("%d of %d connections completed without accept, want %d", ok, tt.dials, tt.wantOK)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The address in use is reported with the address.
	if _, err := Listen(ln.Addr().String(), 0); err == nil {
		t.Fatal("second bind of the same address succeeded")
	} else if want := "listen on " + ln.Addr().String() + ": bind: address already in use"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	// IPv6 loopback, when the machine has it.
	if l6, err := Listen("[::1]:0", 0); err == nil {
		l6.Close()
	}
}

func TestSystemBacklog(t *testing.T) {
	if n := SystemBacklog(); n < 1 {
		t.Fatalf("SystemBacklog() = %d", n)
	}
}
