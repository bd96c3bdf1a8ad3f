package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ControlPath returns the control socket of the daemon whose pidfile is
// pidfile: the same path with ".sock" instead of ".pid".
func ControlPath(pidfile string) string {
	return strings.TrimSuffix(pidfile, ".pid") + ".sock"
}

// Status is what a running daemon reports about itself.
type Status struct {
	Pid         int           `json:"pid"`
	Started     time.Time     `json:"started"`
	Uptime      string        `json:"uptime"`
	Listen      []string      `json:"listen"`
	Engine      string        `json:"engine"`
	Open        int64         `json:"open_connections"`
	Total       uint64        `json:"total_connections"`
	Answered    uint64        `json:"questions_answered"`
	Unknown     uint64        `json:"unknown_questions"`
	Refused     uint64        `json:"refused_connections"`
	Config      string        `json:"config"`
	Log         string        `json:"log"`
	User        string        `json:"user,omitempty"`
	Pending     []string      `json:"pending_restart,omitempty"`
	LastReload  ReloadResult  `json:"last_reload"`
	LastUpgrade UpgradeResult `json:"last_upgrade"`
}

// status builds the instance's Status.
func (in *instance) status() Status {
	st := Status{
		Pid:     os.Getpid(),
		Started: in.started,
		Uptime:  time.Since(in.started).Round(time.Second).String(),
		Engine:  in.svc.Engine(),
		Log:     in.sink.Path(),
	}
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		st.User = u.Username
	} else {
		st.User = strconv.Itoa(os.Geteuid())
	}
	in.mu.Lock()
	st.Config = in.requested.Path
	st.Pending = slices.Clone(in.pending)
	st.LastReload = in.reload
	st.LastUpgrade = in.upgradeRes
	in.mu.Unlock()
	if st.Config == "" {
		st.Config = "(embedded defaults)"
	}
	if st.Log == "" {
		st.Log = "(stderr)"
	}
	for _, a := range in.svc.Addrs() {
		st.Listen = append(st.Listen, a.String())
	}
	m := in.svc.Metrics()
	st.Open, st.Total, st.Unknown = m.Open, m.Accepted, m.Unknown
	for _, n := range m.Answers {
		st.Answered += n
	}
	st.Answered += m.Unknown
	for _, n := range m.Refused {
		st.Refused += n
	}
	return st
}

// control serves the control socket: one line in ("status"), one JSON line
// out.
type control struct {
	ln     *net.UnixListener
	path   string
	closed bool
}

// listenControl creates the control socket at path, mode 0600 (whoever
// started zend: root), replacing a stale one: the caller holds the lock,
// so no live daemon owns it, and the folder was checked by AcquirePidfile.
func listenControl(path string) (*control, error) {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &control{ln: ln, path: path}, nil
}

func (c *control) serve(in *instance) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				return
			}
			switch strings.TrimSpace(line) {
			case "status":
				json.NewEncoder(conn).Encode(in.status())
			default:
				fmt.Fprintf(conn, "{\"error\":%q}\n", "unknown command")
			}
		}()
	}
}

// close closes this process's listener, once. The path stays: it lives
// in root's folder, and after an upgrade it belongs to the new daemon;
// Pidfile.Release and "zend stop" remove it.
func (c *control) close() {
	if c == nil || c.closed {
		return
	}
	c.closed = true
	c.ln.Close()
}

// QueryStatus asks the daemon behind the control socket at path for its
// status.
func QueryStatus(path string) (Status, error) {
	st, _, err := queryStatus(path)
	return st, err
}

// maxStatus bounds a status answer: a few KiB in practice.
const maxStatus = 1 << 20

// queryStatus asks the daemon behind the control socket at path for its
// status, and returns with it the pid of the process that answered, as
// the kernel attests it (SO_PASSCRED: a process cannot claim another's pid
// without CAP_SYS_ADMIN, which the daemon does not have).
func queryStatus(path string) (Status, int, error) {
	var st Status
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return st, 0, fmt.Errorf("control socket: %w", err)
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	pid, err := peerPid(uc) // 0 on Linux: each message's credentials name it
	if err != nil {
		return st, 0, fmt.Errorf("control socket: %w", err)
	}
	uc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := uc.Write([]byte("status\n")); err != nil {
		return st, 0, fmt.Errorf("control socket: %w", err)
	}
	var (
		body []byte
		buf  = make([]byte, 4096)
		oob  = make([]byte, 128)
	)
	for {
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if n > 0 {
			body = append(body, buf[:n]...)
		}
		if len(body) > maxStatus {
			return st, 0, fmt.Errorf("control socket: an answer of more than %d bytes", maxStatus)
		}
		if pid == 0 && oobn > 0 {
			pid = senderPid(oob[:oobn])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return st, 0, fmt.Errorf("control socket: %w", err)
		}
		if n == 0 {
			break
		}
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, 0, fmt.Errorf("control socket: %w", err)
	}
	return st, pid, nil
}
