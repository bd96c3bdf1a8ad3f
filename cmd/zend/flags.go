package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"zend/config"
)

// global holds the flags every command takes and the command itself.
type global struct {
	command string
	args    []string
	source  config.Source
	quiet   bool // -q: check prints only errors
	version bool // -version: print the version, whatever the command
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// parseGlobal parses "[flags] COMMAND [flags] [args]": flags may stand
// before and after the command.
func parseGlobal(args []string, stderr io.Writer) (*global, error) {
	var (
		g      global
		listen multi
		sets   multi
		engine string
		path   string
	)
	fs := flag.NewFlagSet("zend", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&path, "c", "", "configuration `file` (default $ZEND_CONFIG, else "+config.DefaultPath+")")
	fs.Var(&listen, "listen", "listen on `host:port` instead of server.listen (repeatable)")
	fs.StringVar(&engine, "engine", "", "server `engine`: "+strings.Join(config.Engines, ", "))
	fs.Var(&sets, "set", "override a key, as `key=value` (repeatable), e.g. -set limits.max_connections=100")
	fs.BoolVar(&g.quiet, "q", false, "check: print nothing when the configuration is valid")
	fs.BoolVar(&g.version, "version", false, "print the version (as the version command)")
	parse := func(a []string) error {
		if err := fs.Parse(a); err != nil {
			if err == flag.ErrHelp {
				usage(stderr)
				return errUsage
			}
			fmt.Fprintln(stderr, "zend:", err)
			usage(stderr)
			return errUsage
		}
		return nil
	}
	if err := parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		g.command = fs.Arg(0)
		if err := parse(fs.Args()[1:]); err != nil {
			return nil, err
		}
		g.args = fs.Args()
	}
	g.source = config.Source{Path: path, Environ: os.Environ()}
	override := func(kv, flag string) error {
		// A flag naming no key, or a value of the wrong type, is a bad
		// command line (exit 2), whatever the file says.
		if err := config.CheckOverride(kv, flag); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
		g.source.Sets = append(g.source.Sets, kv)
		g.source.Flags = append(g.source.Flags, flag)
		return nil
	}
	if len(listen) > 0 {
		if err := override("server.listen="+strings.Join(listen, ","), "-listen"); err != nil {
			return nil, err
		}
	}
	if engine != "" {
		if err := override("server.engine="+engine, "-engine"); err != nil {
			return nil, err
		}
	}
	for _, kv := range sets {
		if err := override(kv, "-set"); err != nil {
			return nil, err
		}
	}
	// A value a flag may not have, given the rest (the file, the
	// environment), is a bad command line too; problems of the file are
	// left to the command, which says what they mean for it.
	if len(g.source.Sets) > 0 {
		if _, err := g.source.Load(); config.FromFlags(err) {
			return nil, &exitError{code: 2, msg: err.Error()}
		}
	}
	return &g, nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: zend [flags] command

commands:
  run       serve in the foreground (logs to stderr unless log.file is set)
  start     run as a daemon; returns when it serves (0) or failed (1)
  stop      stop the daemon, waiting for its graceful drain (0, also if not
            running; 1 if the pid in the pidfile cannot be proven to be zend)
  restart   stop, then start
  reload    check the configuration, then make the daemon reload it (0 ok,
            1 invalid or refused, 7 not running)
  reopen    make the daemon reopen its log file, for logrotate (0 signalled,
            1 the pid in the pidfile cannot be proven to be zend, 7 not running)
  status    is the daemon running? (0 running, 1 dead with a pidfile, 3 not
            running, 4 unknown: the configuration or pidfile cannot be read)
  upgrade   start the binary on disk in the daemon's place, handing it the
            listening sockets; the old one drains (0 done, 1 failed: the old
            one keeps serving, 7 not running). Also on SIGUSR2.
  check     validate the configuration and print it with every default
  version   print the version
  help      print this help

flags (before or after the command):
  -c FILE            configuration file (default $ZEND_CONFIG, else /etc/zend.toml;
                     when /etc/zend.toml is missing the embedded defaults are used)
  -listen HOST:PORT  listen address instead of server.listen (repeatable)
  -engine NAME       server engine: `+strings.Join(config.Engines, ", ")+`
  -set KEY=VALUE     override any scalar key, e.g. -set limits.max_connections=100
  -q                 check: print nothing when the configuration is valid
  -version, --version  print the version and exit

Precedence: defaults < file < ZEND_* environment < flags.
`)
}
