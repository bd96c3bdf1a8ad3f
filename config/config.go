package config

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is the configuration file read when none is named.
const DefaultPath = "/etc/zend.toml"

// DefaultLogFile is where a daemon started with "zend start" logs when
// log.file is not set. "zend run" logs to stderr instead.
const DefaultLogFile = "/var/log/zend/zend.log"

// The log.file values that name a log service instead of a file: the
// local syslog socket (/dev/log, in the form of log.syslog_format) and systemd's journal
// (its native protocol). "./syslog" names a file called syslog.
const (
	LogSyslog  = "syslog"
	LogJournal = "journal"
)

// IsLogService reports whether a log.file value names a log service
// (LogSyslog or LogJournal) rather than a file or "-".
func IsLogService(p string) bool { return p == LogSyslog || p == LogJournal }

// Config is zend's whole configuration. The TOML names are a public
// contract; env tags name the environment variable that overrides a key.
type Config struct {
	Server  Server            `toml:"server"`
	Daemon  Daemon            `toml:"daemon"`
	Log     Log               `toml:"log"`
	Limits  Limits            `toml:"limits"`
	Access  Access            `toml:"access"`
	Metrics Metrics           `toml:"metrics"`
	Answers map[string]string `toml:"answers"`

	// Path is the file the configuration was loaded from, "" for the
	// embedded defaults. Relative paths in the file are relative to its
	// folder.
	Path string `toml:"-"`

	origin map[string]origin // key -> where its value came from
}

// Server is the [server] table.
type Server struct {
	Listen      []string `toml:"listen" env:"ZEND_LISTEN"`
	Engine      string   `toml:"engine" env:"ZEND_ENGINE"`
	Workers     int      `toml:"workers" env:"ZEND_WORKERS"`
	AnswerDelay Duration `toml:"answer_delay" env:"ZEND_ANSWER_DELAY"`
	Backlog     int      `toml:"backlog" env:"ZEND_BACKLOG"`
	// ProxyProtocol accepts PROXY v1/v2 headers from ProxyTrusted peers.
	ProxyProtocol bool     `toml:"proxy_protocol" env:"ZEND_PROXY_PROTOCOL"`
	ProxyTrusted  []string `toml:"proxy_trusted" env:"ZEND_PROXY_TRUSTED"`
}

// Daemon is the [daemon] table.
type Daemon struct {
	Pidfile string `toml:"pidfile" env:"ZEND_PIDFILE"`
	User    string `toml:"user" env:"ZEND_USER"`
	Group   string `toml:"group" env:"ZEND_GROUP"`
	Umask   string `toml:"umask" env:"ZEND_UMASK"`
}

// Log is the [log] table.
type Log struct {
	File     string `toml:"file" env:"ZEND_LOG_FILE"`
	Level    string `toml:"level" env:"ZEND_LOG_LEVEL"`
	Format   string `toml:"format" env:"ZEND_LOG_FORMAT"`
	Facility string `toml:"facility" env:"ZEND_LOG_FACILITY"`
	// SyslogFormat is the form of the records log.file = "syslog" sends:
	// SyslogRFC3164 or SyslogRFC5424.
	SyslogFormat string `toml:"syslog_format" env:"ZEND_LOG_SYSLOG_FORMAT"`
	MaxSizeMB    int    `toml:"max_size_mb" env:"ZEND_LOG_MAX_SIZE_MB"`
	MaxBackups   int    `toml:"max_backups" env:"ZEND_LOG_MAX_BACKUPS"`
	MaxAgeDays   int    `toml:"max_age_days" env:"ZEND_LOG_MAX_AGE_DAYS"`
	Compress     bool   `toml:"compress" env:"ZEND_LOG_COMPRESS"`
}

// Limits is the [limits] table.
type Limits struct {
	MaxConnections   int      `toml:"max_connections" env:"ZEND_MAX_CONNECTIONS"`
	MaxQuestionBytes int      `toml:"max_question_bytes" env:"ZEND_MAX_QUESTION_BYTES"`
	IdleTimeout      Duration `toml:"idle_timeout" env:"ZEND_IDLE_TIMEOUT"`
	QuestionTimeout  Duration `toml:"question_timeout" env:"ZEND_QUESTION_TIMEOUT"`
	WriteTimeout     Duration `toml:"write_timeout" env:"ZEND_WRITE_TIMEOUT"`
	ShutdownTimeout  Duration `toml:"shutdown_timeout" env:"ZEND_SHUTDOWN_TIMEOUT"`
	// Per-source limits; 0 means none.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip" env:"ZEND_MAX_CONNECTIONS_PER_IP"`
	AcceptRatePerIP     int `toml:"accept_rate_per_ip" env:"ZEND_ACCEPT_RATE_PER_IP"`
	// IPv6Prefix is the prefix length under which the per-source limits
	// count an IPv6 client: one host commonly holds a whole /64.
	IPv6Prefix int `toml:"ipv6_prefix" env:"ZEND_IPV6_PREFIX"`
	// SendBuffer is each connection's kernel send buffer (SO_SNDBUF), in
	// bytes; 0 leaves it to the kernel's autotuning.
	SendBuffer int `toml:"send_buffer" env:"ZEND_SEND_BUFFER"`
}

// Metrics is the [metrics] table.
type Metrics struct {
	// Listen is where Prometheus metrics are served at /metrics; "" is
	// off.
	Listen string `toml:"listen" env:"ZEND_METRICS_LISTEN"`
}

// Access is the [access] table: tcpd's semantics, an address matching
// allow is served, else one matching deny is refused, else it is served.
type Access struct {
	Allow []string `toml:"allow" env:"ZEND_ACCESS_ALLOW"`
	Deny  []string `toml:"deny" env:"ZEND_ACCESS_DENY"`
}

// Default returns the embedded defaults: what zend runs on when
// /etc/zend.toml does not exist.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen:       []string{"127.0.0.1:1060"},
			Engine:       "auto",
			Workers:      0,
			ProxyTrusted: []string{},
		},
		Daemon: Daemon{
			Pidfile: "/run/zend/zend.pid",
			Umask:   "0022",
		},
		Log: Log{
			Level:        "info",
			Format:       "text",
			Facility:     "daemon",
			SyslogFormat: SyslogRFC3164,
			MaxSizeMB:    100,
			MaxBackups:   7,
			MaxAgeDays:   28,
			Compress:     true,
		},
		Limits: Limits{
			MaxConnections:   10000,
			MaxQuestionBytes: 1024,
			IdleTimeout:      Duration(5 * time.Minute),
			QuestionTimeout:  Duration(30 * time.Second),
			WriteTimeout:     Duration(30 * time.Second),
			ShutdownTimeout:  Duration(10 * time.Second),
			IPv6Prefix:       64,
			SendBuffer:       64 << 10,
		},
		Access:  Access{Allow: []string{}, Deny: []string{}},
		Answers: map[string]string{},
	}
}

// Abs resolves p against the folder of the configuration file, so that a
// daemon whose working directory is / finds what the file names. An
// absolute p, "-" and "" are returned unchanged, as is p when the
// configuration did not come from a file (relative to the working directory
// then).
func (c *Config) Abs(p string) string {
	if p == "" || p == "-" || filepath.IsAbs(p) {
		return p
	}
	if c.Path != "" {
		return filepath.Join(filepath.Dir(c.Path), p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// Duration is a time.Duration written in TOML as a string such as "30s",
// "5m" or "1h30m".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: allowed are a number and a unit (ms, s, m, h), such as \"30s\" or \"5m\"", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as Go does ("5m0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// WriteTOML writes the configuration as TOML, every key included: the
// effective configuration that "zend check" prints.
func (c *Config) WriteTOML(w io.Writer) error {
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	if err := enc.Encode(c); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
