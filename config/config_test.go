package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// write puts text in a file named zend.toml in a temporary folder.
func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zend.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSampleLoads keeps etc/zend.toml valid: packages install it as
// /etc/zend.toml.
func TestSampleLoads(t *testing.T) {
	c, err := Source{Path: "../etc/zend.toml"}.Load()
	if err != nil {
		t.Fatalf("etc/zend.toml: %v", err)
	}
	d := Default()
	if c.Server.Engine != d.Server.Engine || c.Limits != d.Limits || c.Server.Listen[0] != d.Server.Listen[0] {
		t.Errorf("etc/zend.toml's values differ from the defaults it documents")
	}
	if c.Answers["Readability counts?"] != "Yes." {
		t.Errorf("etc/zend.toml's sample answer not loaded: %v", c.Answers)
	}
}

func TestDefaultsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadValues(t *testing.T) {
	p := write(t, `
[server]
listen = ["127.0.0.1:2000", "[::1]:2000"]
engine = "pool"
workers = 8
answer_delay = "10ms"
[limits]
idle_timeout = "1m"
[answers]
"Readability counts?" = "Yes."
`)
	c, err := Source{Path: p}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Server.Listen) != 2 || c.Server.Engine != "pool" || c.Server.Workers != 8 ||
		c.Server.AnswerDelay.D() != 10*time.Millisecond || c.Limits.IdleTimeout.D() != time.Minute ||
		c.Limits.QuestionTimeout.D() != 30*time.Second || c.Answers["Readability counts?"] != "Yes." {
		t.Fatalf("loaded %+v", c)
	}
	if c.Path != p {
		t.Errorf("Path = %q, want %q", c.Path, p)
	}
	if got := c.Abs("log/zend.log"); got != filepath.Join(filepath.Dir(p), "log/zend.log") {
		t.Errorf("Abs = %q: relative paths must be relative to the file's folder", got)
	}
}

// TestErrors checks that every kind of bad input names the file, the line,
// the key and what is allowed.
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // substrings of the error
	}{
		// A key zend does not know, with its line and the allowed keys.
		{"unknown key", "[server]\nlistn = [\"127.0.0.1:1\"]\n", []string{"zend.toml:2: server.listn: unknown key", "listen, engine"}},
		// A table zend does not know.
		{"unknown table", "[srever]\nlisten = 1\n", []string{"zend.toml:", "srever", "allowed tables"}},
		// A string where an integer belongs.
		{"wrong type", "[server]\n\nworkers = \"four\"\n", []string{"zend.toml:3: server.workers: wrong type", "an integer"}},
		// A duration that does not parse.
		{"bad duration", "[limits]\nidle_timeout = \"5 minutes\"\n", []string{"zend.toml:2: limits.idle_timeout:", "\"30s\""}},
		// A duration given as a number.
		{"duration as number", "[limits]\nidle_timeout = 5\n", []string{"zend.toml:2: limits.idle_timeout: invalid duration \"5\"", "\"30s\""}},
		// TOML syntax.
		{"syntax", "[server\nlisten = 1\n", []string{"zend.toml:2:", "end table name"}},
		// A listen address without a port.
		{"address without port", "[server]\nlisten = [\"127.0.0.1\"]\n", []string{"zend.toml:2: server.listen:", "127.0.0.1:1060"}},
		// A port out of range.
		{"bad port", "[server]\nlisten = [\"127.0.0.1:70000\"]\n", []string{"zend.toml:2: server.listen:", "0 to 65535"}},
		// An empty listen list.
		{"no address", "[server]\nlisten = []\n", []string{"zend.toml:2: server.listen: empty"}},
		// An engine that does not exist.
		{"unknown engine", "[server]\nengine = \"threads\"\n", []string{"zend.toml:2: server.engine:", "single, pool, goroutine"}},
		// Zero and negative limits.
		{"zero max_connections", "[limits]\nmax_connections = 0\n", []string{"zend.toml:2: limits.max_connections: 0: allowed is 1 or more"}},
		{"negative max_question_bytes", "[limits]\nmax_question_bytes = -1\n", []string{"zend.toml:2: limits.max_question_bytes:"}},
		{"zero timeout", "[limits]\nshutdown_timeout = \"0s\"\n", []string{"zend.toml:2: limits.shutdown_timeout:", "positive"}},
		{"negative duration", "[limits]\nquestion_timeout = \"-1s\"\n", []string{"zend.toml:2: limits.question_timeout:"}},
		// log level and format.
		{"bad level", "[log]\nlevel = \"verbose\"\n", []string{"zend.toml:2: log.level:", "debug, info, warn, error"}},
		{"bad format", "[log]\nformat = \"xml\"\n", []string{"zend.toml:2: log.format:", "text, json"}},
		// umask must be octal.
		{"bad umask", "[daemon]\numask = \"0999\"\n", []string{"zend.toml:2: daemon.umask:", "octal"}},
		// Answers: a question must end with '?', an answer with '.'.
		{"question without ?", "[answers]\n\"Readability counts\" = \"Yes.\"\n", []string{"zend.toml:2: answers.\"Readability counts\":", "must end with '?'"}},
		{"answer without .", "[answers]\n\"Readability counts?\" = \"Yes\"\n", []string{"zend.toml:2:", "must end with '.'"}},
		{"answer not a string", "[answers]\n\"Readability counts?\" = 5\n", []string{"zend.toml:2:", "an answer is a string"}},
		// Every problem is reported, not only the first.
		{"several", "[server]\nengine = \"x\"\nworkers = -1\n", []string{"zend.toml:2: server.engine", "zend.toml:3: server.workers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, tt.text)
			_, err := Source{Path: p}.Load()
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestBounds checks every upper bound: the largest allowed value loads, and
// one more is an error that names the file, the line, the key, the value
// and what is allowed. want is "" when the file must load.
func TestBounds(t *testing.T) {
	maxWorkers := min(1024, max(64, 4*runtime.NumCPU()))
	tests := []struct {
		name string
		text string
		want string
	}{
		// server.workers: 4 per CPU, but no less than 64 and no more than 1024.
		{"workers at the bound", fmt.Sprintf("[server]\nworkers = %d\n", maxWorkers), ""},
		// One more worker than this machine allows, with the number computed for it.
		{"workers above the bound", fmt.Sprintf("[server]\nworkers = %d\n", maxWorkers+1),
			fmt.Sprintf("zend.toml:2: server.workers: %d: allowed is 0 (automatic: 4 for pool, one loop per two CPUs for eventloop and uring) to %d on this machine (4 per CPU for its %d CPUs, but no less than 64 and no more than 1024: each eventloop worker is an OS thread)", maxWorkers+1, maxWorkers, runtime.NumCPU())},
		// The value: 100,000 eventloop threads would abort Go.
		{"workers 100000", "[server]\nengine = \"eventloop\"\nworkers = 100000\n", "zend.toml:3: server.workers: 100000: allowed is 0"},
		// A pidfile that names a folder: start would make it and write
		// "zend-nu4" inside, and no command could read it after.
		{"pidfile folder", "[daemon]\npidfile = \"/run/zend/\"\n", `zend.toml:2: daemon.pidfile: "/run/zend/" names a folder`},
		// A pidfile named like the lock beside it.
		{"pidfile .lock", "[daemon]\npidfile = \"/run/zend/zend.lock\"\n", `zend.toml:2: daemon.pidfile: "/run/zend/zend.lock": the lock (.lock) and the control socket (.sock) take the pidfile's name`},
		// A log file that names a folder.
		{"log.file folder", "[log]\nfile = \"/var/log/zend/\"\n", `zend.toml:2: log.file: "/var/log/zend/" names a folder`},
		// The largest backlog the kernel keeps.
		{"backlog at the bound", "[server]\nbacklog = 65535\n", ""},
		// One more would wrap to 0 on kernels that keep it in 16 bits.
		{"backlog above the bound", "[server]\nbacklog = 65536\n", "zend.toml:2: server.backlog: 65536: allowed is 0 (the system maximum, net.core.somaxconn) to 65535"},
		// 64 listen addresses.
		{"listen at the bound", listen(64), ""},
		// One more: a listener each, with pool's workers on each.
		{"listen above the bound", listen(65), "zend.toml:2: server.listen: 65 addresses: allowed is 1 to 64"},
		// Every timeout at 24 hours.
		{"timeouts at the bound", "[limits]\nidle_timeout = \"24h\"\nquestion_timeout = \"24h\"\nwrite_timeout = \"24h\"\nshutdown_timeout = \"24h\"\n", ""},
		// A nanosecond more of idle_timeout.
		{"idle_timeout above the bound", "[limits]\nidle_timeout = \"24h1ns\"\n", "zend.toml:2: limits.idle_timeout: 24h0m0.000000001s: allowed is a positive duration up to 24h"},
		// A nanosecond more of question_timeout.
		{"question_timeout above the bound", "[limits]\nquestion_timeout = \"24h1ns\"\n", "zend.toml:2: limits.question_timeout: 24h0m0.000000001s: allowed is a positive duration up to 24h"},
		// A nanosecond more of write_timeout.
		{"write_timeout above the bound", "[limits]\nwrite_timeout = \"24h1ns\"\n", "zend.toml:2: limits.write_timeout: 24h0m0.000000001s: allowed is a positive duration up to 24h"},
		// A nanosecond more of shutdown_timeout.
		{"shutdown_timeout above the bound", "[limits]\nshutdown_timeout = \"24h1ns\"\n", "zend.toml:2: limits.shutdown_timeout: 24h0m0.000000001s: allowed is a positive duration up to 24h"},
		// The largest duration Go parses, which would overflow the event loop's deadlines.
		{"timeout that would overflow", "[limits]\nidle_timeout = \"2562047h\"\n", "zend.toml:2: limits.idle_timeout: 2562047h0m0s: allowed is a positive duration up to 24h"},
		// A log file rotated at 1 TiB.
		{"max_size_mb at the bound", "[log]\nmax_size_mb = 1048576\n", ""},
		// A megabyte more.
		{"max_size_mb above the bound", "[log]\nmax_size_mb = 1048577\n", "zend.toml:2: log.max_size_mb: 1048577: allowed is 0 (no size rotation) to 1048576"},
		// 10,000 rotated files kept.
		{"max_backups at the bound", "[log]\nmax_backups = 10000\n", ""},
		// One more.
		{"max_backups above the bound", "[log]\nmax_backups = 10001\n", "zend.toml:2: log.max_backups: 10001: allowed is 0 (keep all) to 10000"},
		// Rotated files kept ten years.
		{"max_age_days at the bound", "[log]\nmax_age_days = 3650\n", ""},
		// A day more.
		{"max_age_days above the bound", "[log]\nmax_age_days = 3651\n", "zend.toml:2: log.max_age_days: 3651: allowed is 0 (keep forever) to 3650"},
		// An answer of 1024 bytes, its period included.
		{"answer at the bound", answer(1024), ""},
		// One byte more: the error shows the answer's start and its length, not all of it.
		{"answer above the bound", answer(1025), "zend.toml:2: answers.\"Readability counts?\": answer \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... (1025 bytes): allowed is at most 1024 bytes"},
		// The value: a 1 MB answer, copied out for every question that asks it.
		{"answer of 1 MB", answer(1 << 20), "answer \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... (1048576 bytes): allowed is at most 1024 bytes"},
		// 1000 questions in [answers].
		{"answers at the bound", answers(1000), ""},
		// One more: the error names the table's line.
		{"answers above the bound", answers(1001), "zend.toml:1: answers: 1001 entries: allowed is at most 1000 questions"},
		// A question far longer than max_question_bytes is cut in its key and in its value.
		{"long question", "[answers]\n\"" + strings.Repeat("q", 70000) + "?\" = \"Yes.\"\n", "zend.toml:2: answers.\"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"...: question \"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"... (70001 bytes): is 70001 bytes, longer than limits.max_question_bytes (1024)"},
		// A question of 64 KiB may be allowed.
		{"max_question_bytes at the bound", "[limits]\nmax_question_bytes = 65536\n", ""},
		// More is buffered per connection: 1 MiB (allowed before) times 10,000 connections is 10 GiB.
		{"max_question_bytes above the bound", "[limits]\nmax_question_bytes = 65537\n", "zend.toml:2: limits.max_question_bytes: 65537: allowed is 1 to 65536"},
		// As many connections as Linux's default fs.nr_open lets a process open.
		{"max_connections at the bound", "[limits]\nmax_connections = 1048576\n", ""},
		// One more; the existing message for 0 is kept.
		{"max_connections above the bound", "[limits]\nmax_connections = 1048577\n", "zend.toml:2: limits.max_connections: 1048577: allowed is 1 or more, at most 1048576"},
		// A per-source limit equal to the whole server's.
		{"max_connections_per_ip at the bound", "[limits]\nmax_connections = 100\nmax_connections_per_ip = 100\n", ""},
		// A per-source limit above it would never be reached.
		{"max_connections_per_ip above the bound", "[limits]\nmax_connections = 100\nmax_connections_per_ip = 101\n", "zend.toml:3: limits.max_connections_per_ip: 101: allowed is 0 (no limit) to 100 (limits.max_connections): a larger limit is never reached"},
		// pool does not apply max_connections: there the per-source limit has max_connections' own bound.
		{"max_connections_per_ip on pool at the bound", "[server]\nengine = \"pool\"\n[limits]\nmax_connections = 100\nmax_connections_per_ip = 1048576\n", ""},
		// One more than any process can hold.
		{"max_connections_per_ip on pool above the bound", "[server]\nengine = \"pool\"\n[limits]\nmax_connections_per_ip = 1048577\n", "zend.toml:4: limits.max_connections_per_ip: 1048577: allowed is 0 (no limit) to 1048576 (as limits.max_connections)"},
		// A source's rate up to the 65,535 ports it has.
		{"accept_rate_per_ip at the bound", "[limits]\naccept_rate_per_ip = 65535\n", ""},
		// One more new connection a second.
		{"accept_rate_per_ip above the bound", "[limits]\naccept_rate_per_ip = 65536\n", "zend.toml:2: limits.accept_rate_per_ip: 65536: allowed is 0 (no limit) to 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Source{Path: write(t, tt.text)}.Load()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("the largest allowed value is refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded, want an error containing %q", tt.want)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			// A megabyte of value must not become a megabyte of error.
			if len(err.Error()) > 512 {
				t.Errorf("error is %d bytes long: %.200q...", len(err.Error()), err)
			}
		})
	}
}

// listen returns a file with n listen addresses.
func listen(n int) string {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", 2000+i))
	}
	return "[server]\nlisten = [" + strings.Join(addrs, ", ") + "]\n"
}

// answer returns a file whose one answer is n bytes long.
func answer(n int) string {
	return "[answers]\n\"Readability counts?\" = \"" + strings.Repeat("a", n-1) + ".\"\n"
}

// answers returns a file with n questions in [answers].
func answers(n int) string {
	var b strings.Builder
	b.WriteString("[answers]\n")
	for i := range n {
		fmt.Fprintf(&b, "\"Question %d?\" = \"Yes.\"\n", i)
	}
	return b.String()
}

// TestMaxWorkers checks the formula of server.workers' bound on machines
// of other sizes.
func TestMaxWorkers(t *testing.T) {
	for _, tt := range []struct{ cpus, want int }{
		{1, 64},     // the floor: a pool serves 64 clients even on one CPU
		{16, 64},    // 4 per CPU reaches the floor
		{17, 68},    // 4 per CPU above it
		{256, 1024}, // the cap
		{512, 1024}, // never above it, far from Go's 10,000 threads
	} {
		if got := maxWorkersFor(tt.cpus); got != tt.want {
			t.Errorf("maxWorkersFor(%d) = %d, want %d", tt.cpus, got, tt.want)
		}
	}
	if got, want := MaxWorkers(), maxWorkersFor(runtime.NumCPU()); got != want {
		t.Errorf("MaxWorkers() = %d, want %d", got, want)
	}
}

func TestMissingFile(t *testing.T) {
	// A file named explicitly must exist.
	_, err := Source{Path: filepath.Join(t.TempDir(), "nope.toml")}.Load()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("named missing file: %v, want ErrNotExist", err)
	}
	// So must one named by ZEND_CONFIG.
	_, err = Source{Environ: []string{"ZEND_CONFIG=" + filepath.Join(t.TempDir(), "nope.toml")}}.Load()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ZEND_CONFIG missing file: %v, want ErrNotExist", err)
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	p := write(t, "[server]\nengine = \"pool\"\nworkers = 2\n[limits]\nmax_connections = 50\n")
	env := []string{
		"ZEND_CONFIG=" + p,
		"ZEND_LISTEN=127.0.0.1:3000, [::1]:3000",
		"ZEND_MAX_CONNECTIONS=70",
		"ZEND_LOG_LEVEL=debug",
		"ZEND_IDLE_TIMEOUT=2m",
		"ZEND_LOG_COMPRESS=false",
		"PATH=/usr/bin", // not ours
	}
	c, err := Source{Environ: env, Sets: []string{"limits.max_connections=90", "server.workers=3"}}.Load()
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.Server.Engine != "pool": // file
		t.Errorf("engine %q: the file's value was lost", c.Server.Engine)
	case len(c.Server.Listen) != 2 || c.Server.Listen[1] != "[::1]:3000": // environment
		t.Errorf("listen %q", c.Server.Listen)
	case c.Limits.MaxConnections != 90: // flag over environment over file
		t.Errorf("max_connections %d, want 90 (flag)", c.Limits.MaxConnections)
	case c.Server.Workers != 3:
		t.Errorf("workers %d, want 3 (flag)", c.Server.Workers)
	case c.Log.Level != "debug" || c.Limits.IdleTimeout.D() != 2*time.Minute || c.Log.Compress:
		t.Errorf("environment not applied: %+v %+v", c.Log, c.Limits)
	}

	tests := []struct {
		name string
		env  []string
		sets []string
		want string
	}{
		// An unknown ZEND_ variable is a typo, not something to ignore.
		{"unknown variable", []string{"ZEND_LISTN=x"}, nil, "environment ZEND_LISTN: unknown variable"},
		// A value that does not parse names the variable and the key.
		{"bad integer", []string{"ZEND_MAX_CONNECTIONS=many"}, nil, "environment ZEND_MAX_CONNECTIONS: limits.max_connections: not an integer"},
		// A value that parses but is out of range is caught by Validate, which names the variable.
		{"zero from env", []string{"ZEND_MAX_CONNECTIONS=0"}, nil, "environment ZEND_MAX_CONNECTIONS: limits.max_connections: 0"},
		{"bad engine from env", []string{"ZEND_ENGINE=threads"}, nil, "environment ZEND_ENGINE: server.engine"},
		// A value above a bound names the variable too.
		{"workers from env above the bound", []string{"ZEND_WORKERS=100000"}, nil, "environment ZEND_WORKERS: server.workers: 100000: allowed is 0"},
		// Flags: an unknown key and a malformed pair.
		{"unknown flag key", nil, []string{"limits.max=1"}, "flag -set: limits.max: unknown key"},
		{"no equals", nil, []string{"limits.max_connections"}, "allowed is key=value"},
		{"bad duration flag", nil, []string{"limits.idle_timeout=soon"}, "limits.idle_timeout: invalid duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Source{Path: p, Environ: tt.env, Sets: tt.sets}.Load()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestEveryKeyHasAnEnvVar keeps the ZEND_* pattern complete as keys are
// added.
func TestEveryKeyHasAnEnvVar(t *testing.T) {
	seen := map[string]string{}
	for _, f := range fields {
		if !strings.HasPrefix(f.env, "ZEND_") {
			t.Errorf("%s has no ZEND_ variable", f.key())
		}
		if other, dup := seen[f.env]; dup {
			t.Errorf("%s and %s share %s", f.key(), other, f.env)
		}
		seen[f.env] = f.key()
		// Each variable must parse what WriteTOML prints for the default.
		c := Default()
		if err := c.Set(f.key(), defaultString(t, f), "test"); err != nil {
			t.Errorf("%s: %v", f.key(), err)
		}
	}
}

func defaultString(t *testing.T, f field) string {
	t.Helper()
	var b strings.Builder
	if err := Default().WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	table := ""
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if ok && table == f.table && k == f.name {
			v = strings.Trim(v, "[]")
			return strings.ReplaceAll(v, "\"", "")
		}
	}
	t.Fatalf("%s not printed by WriteTOML", f.key())
	return ""
}

// TestWriteTOMLRoundTrip checks that what "zend check" prints loads back
// to the same configuration.
func TestWriteTOMLRoundTrip(t *testing.T) {
	c, err := Source{Path: "../etc/zend.toml"}.Load()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := c.WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	c2, err := Source{Path: write(t, b.String())}.Load()
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, b.String())
	}
	if c2.Limits != c.Limits || c2.Server.Engine != c.Server.Engine || len(c2.Answers) != len(c.Answers) {
		t.Fatalf("round trip changed the config:\n%s", b.String())
	}
}

// FuzzLoad feeds arbitrary files to the loader: it must never panic, and
// every error must name the file.
func FuzzLoad(f *testing.F) {
	sample, _ := os.ReadFile("../etc/zend.toml")
	f.Add(sample)
	f.Add([]byte("[server]\nlisten = [\"127.0.0.1:1060\"]\nengine = \"pool\"\n"))
	f.Add([]byte("[limits]\nidle_timeout = \"5x\"\n"))
	f.Add([]byte("[access]\nallow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"0.0.0.0/0\"]\n"))
	f.Add([]byte("[answers]\n\"a?\" = \"b.\"\n[srever]\nx = 1\n"))
	f.Add([]byte("[server\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Source{Path: p}.Load()
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned an invalid config: %v", err)
		}
	})
}

// TestConfigFIFO: a FIFO at the configuration's path (someone's, in a
// folder they can write) is refused at once instead of stalling zend.
func TestConfigFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zend.toml")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(p); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, errNotRegular) {
			t.Fatalf("Load(FIFO) = %v, want errNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
}

// TestTooDeep: values nested past maxNesting are refused before the TOML
// parser sees them (its time is quadratic in the depth), with the line;
// brackets inside strings and comments do not count.
func TestTooDeep(t *testing.T) {
	deep := strings.Repeat("{b=", maxNesting+1)
	tests := []struct {
		name string
		toml string
		line int // 0: not too deep
	}{
		// Inline tables past the limit, on line 2.
		{"inline tables", "[server]\na = " + deep, 2},
		// Arrays past the limit.
		{"arrays", "a = " + strings.Repeat("[", maxNesting+1), 1},
		// A million levels: refused as fast as any other.
		{"a million", "a = " + strings.Repeat("{b=", 1_000_000), 1},
		// At the limit: the parser decides.
		{"at the limit", "a = " + strings.Repeat("[", maxNesting), 0},
		// Brackets in a basic string, with an escaped quote.
		{"in a string", "[answers]\n\"Is it?\" = \"\\\"" + deep + "\\\" it is.\"\n", 0},
		// In a literal and in multi-line strings, over several lines.
		{"in other strings", "a = '" + deep + "'\nb = \"\"\"\n" + deep + "\n\"\"\"\nc = '''\n" + deep + "'''\nd = " + deep, 7},
		// In a comment.
		{"in a comment", "# " + deep + "\n", 0},
		// The shipped configuration.
		{"etc/zend.toml", string(mustRead(t, "../etc/zend.toml")), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tooDeep([]byte(tt.toml), maxNesting); got != tt.line {
				t.Fatalf("tooDeep = line %d, want %d", got, tt.line)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "zend.toml")
	os.WriteFile(p, []byte("a = "+strings.Repeat("{b=", 1_000_000)), 0o600)
	_, err := Source{Path: p}.Load()
	var ce *Error
	if !errors.As(err, &ce) || ce.Source != p || ce.Line != 1 || !strings.Contains(ce.Msg, "nested") {
		t.Fatalf("Load = %v, want the nesting refused at %s:1", err, p)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAllErrorsAtOnce: every problem of a file is reported in one go, in
// the file's order, each with its line and key (seen: only the first
// type error, so fixing a file took a round per mistake).
func TestAllErrorsAtOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zend.toml")
	os.WriteFile(p, []byte(`[server]
workers = "four"
listn = 1
[limits]
idle_timeout = "5 minutes"
max_connections = 0
[answers]
"Is it?" = 3
"Fine?" = "Yes."
`), 0o600)
	_, err := Load(p)
	if err == nil {
		t.Fatal("Load accepted a broken file")
	}
	want := []struct {
		line int
		key  string
	}{
		{2, "server.workers"},         // a string for an integer
		{3, "server.listn"},           // an unknown key
		{5, "limits.idle_timeout"},    // not a duration
		{6, "limits.max_connections"}, // out of range, found although others did not decode
		{8, `answers."Is it?"`},       // an answer that is not a string
	}
	got := unjoin(err)
	if len(got) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		var ce *Error
		if !errors.As(got[i], &ce) || ce.Line != w.line || ce.Key != w.key || ce.Source != p {
			t.Errorf("error %d: %v, want %s:%d: %s", i, got[i], p, w.line, w.key)
		}
	}
}

// TestLogTargetKeys checks log.file's service names, log.facility and
// log.syslog_format: what
// loads, and that a bad facility names the file, line, key and every
// allowed name.
func TestLogTargetKeys(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // substrings of the error; nil: it loads
	}{
		// syslog is a service, not a file relative to the config's folder.
		{"syslog", "[log]\nfile = \"syslog\"\n", nil},
		// journal likewise.
		{"journal", "[log]\nfile = \"journal\"\n", nil},
		// A file that happens to be called syslog is named with a path.
		{"file named syslog", "[log]\nfile = \"./syslog\"\n", nil},
		// Every allowed facility loads; local7 is the last one.
		{"facility local7", "[log]\nfacility = \"local7\"\n", nil},
		// authpriv, a name that is not a prefix of another.
		{"facility authpriv", "[log]\nfacility = \"authpriv\"\n", nil},
		// An unknown facility lists the allowed ones.
		{"unknown facility", "[log]\nfacility = \"local8\"\n", []string{"zend.toml:2: log.facility: unknown facility \"local8\": allowed are user, mail, daemon,", "local7"}},
		// kern is the kernel's: refused.
		{"kern", "[log]\n\nfacility = \"kern\"\n", []string{"zend.toml:3: log.facility: unknown facility \"kern\""}},
		// Names are lower case, as syslog.conf writes them.
		{"upper case", "[log]\nfacility = \"DAEMON\"\n", []string{"zend.toml:2: log.facility:"}},
		// Empty is not "the default": it is a mistake.
		{"empty facility", "[log]\nfacility = \"\"\n", []string{"zend.toml:2: log.facility: unknown facility \"\""}},
		// A facility is a name, not a number.
		{"number", "[log]\nfacility = 3\n", []string{"zend.toml:2: log.facility: wrong type"}},
		// Both syslog forms load.
		{"syslog_format rfc5424", "[log]\nsyslog_format = \"rfc5424\"\n", nil},
		{"syslog_format rfc3164", "[log]\nsyslog_format = \"rfc3164\"\n", nil},
		// An unknown form names both allowed ones.
		{"syslog_format bsd", "[log]\nsyslog_format = \"bsd\"\n", []string{"zend.toml:2: log.syslog_format: unknown syslog format \"bsd\": allowed are rfc3164, rfc5424"}},
		// Empty is a mistake, not the default.
		{"syslog_format empty", "[log]\nsyslog_format = \"\"\n", []string{"zend.toml:2: log.syslog_format: unknown syslog format \"\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Source{Path: write(t, tt.text)}.Load()
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if IsLogService(c.Log.File) && c.Abs(c.Log.File) == c.Log.File {
					t.Fatalf("Abs(%q) unchanged: test is wrong", c.Log.File)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestFacilityCode checks the RFC 5424 numbers.
func TestFacilityCode(t *testing.T) {
	for name, want := range map[string]int{"user": 1, "daemon": 3, "auth": 4, "authpriv": 10, "ftp": 11, "local0": 16, "local7": 23, "bogus": 3} {
		if got := FacilityCode(name); got != want {
			t.Errorf("FacilityCode(%q) = %d, want %d", name, got, want)
		}
	}
}

// TestSyslogSocketVariableIsNotAKey: the test-only ZEND_SYSLOG_SOCKET is
// not rejected as an unknown variable.
func TestSyslogSocketVariableIsNotAKey(t *testing.T) {
	if _, err := (Source{Path: write(t, ""), Environ: []string{EnvSyslogSocket + "=/tmp/x"}}).Load(); err != nil {
		t.Fatal(err)
	}
}
