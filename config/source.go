package config

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/BurntSushi/toml"
)

// Source says where a configuration comes from: a file, the environment
// and command-line overrides, in that order of precedence (each on top of
// the one before, all on top of Default).
type Source struct {
	// Path is the file named with -c; "" means $ZEND_CONFIG, or
	// DefaultPath when that is unset too.
	Path string
	// Environ is the environment, as os.Environ returns it.
	Environ []string
	// Sets are command-line overrides as "key=value"
	// ("limits.max_connections=100"), applied in order.
	Sets []string
	// Flags names the flag each of Sets came from, for errors ("-engine");
	// "-set" where it is shorter than Sets.
	Flags []string
}

// flagOf names the flag Sets[i] came from.
func (s Source) flagOf(i int) string {
	if i < len(s.Flags) && s.Flags[i] != "" {
		return "flag " + s.Flags[i]
	}
	return "flag -set"
}

// CheckOverride checks one command-line override ("key=value") on its
// own: the key exists and the value has its type. Whether the value is
// allowed can depend on other keys (server.proxy_protocol needs
// server.proxy_trusted), so that is Load's to say. It returns nil, or an
// error matching ErrInvalid that names flag ("-set", "-engine").
func CheckOverride(kv, flag string) error {
	s := Source{Sets: []string{kv}, Flags: []string{flag}}
	return s.applySets(Default())
}

// FromFlags reports whether err (of Load) is only about command-line
// overrides: every problem it lists came from a flag.
func FromFlags(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range unjoin(err) {
		var ce *Error
		if !errors.As(e, &ce) || !strings.HasPrefix(ce.Source, "flag ") {
			return false
		}
	}
	return true
}

// applySets applies s.Sets to c.
func (s Source) applySets(c *Config) error {
	var errs []error
	for i, kv := range s.Sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, &Error{Source: s.flagOf(i), Msg: "\"" + kv + "\": allowed is key=value, such as limits.max_connections=100"})
			continue
		}
		if err := c.Set(strings.TrimSpace(k), v, s.flagOf(i)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Load loads, overrides and validates the configuration. A file named by
// Path or ZEND_CONFIG must exist; when DefaultPath does not exist the
// embedded defaults are used and the returned Config's Path is "". It
// returns an error matching ErrInvalid for bad content, or one wrapping the
// file system error when a file cannot be read.
func (s Source) Load() (*Config, error) {
	path, explicit := s.Path, true
	if path == "" {
		path = lookup(s.Environ, EnvConfig)
	}
	if path == "" {
		path, explicit = DefaultPath, false
	}
	c, err := Load(path)
	if err != nil {
		if explicit || !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		c = Default()
	}
	if err := c.ApplyEnv(s.Environ); err != nil {
		return nil, err
	}
	if err := s.applySets(c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func lookup(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// Pidfile returns daemon.pidfile as the file, environment and flags set it,
// even when other keys are invalid, so that "zend stop" and "zend status"
// still find a running daemon after someone broke the file. A file named
// by Path or ZEND_CONFIG that cannot be read is an error (a typo in -c must
// not make "zend stop" believe nothing runs); a missing DefaultPath means
// the default pidfile.
func (s Source) Pidfile() (string, error) {
	c, err := s.Load()
	if err == nil {
		return c.Abs(c.Daemon.Pidfile), nil
	}
	path, explicit := s.Path, true
	if path == "" {
		path = lookup(s.Environ, EnvConfig)
	}
	if path == "" {
		path, explicit = DefaultPath, false
	}
	c = Default()
	fc, lerr := Load(path)
	switch {
	case lerr == nil:
		c = fc
	case errors.Is(lerr, fs.ErrNotExist) && !explicit:
	case errors.Is(lerr, ErrInvalid):
		// Broken content: the pidfile key may still be readable; when
		// the file does not even parse, guessing the default pidfile
		// could make "zend stop" believe nothing runs.
		p, ok, perr := rawPidfile(path)
		if perr != nil {
			return "", fmt.Errorf("cannot find daemon.pidfile in a file that does not parse: %w", lerr)
		}
		if ok {
			c.Daemon.Pidfile = p
			c.Path = path
		}
	default:
		return "", lerr
	}
	if v := lookup(s.Environ, fieldByKey["daemon.pidfile"].env); v != "" {
		c.Daemon.Pidfile = v
	}
	for _, kv := range s.Sets {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == "daemon.pidfile" {
			c.Daemon.Pidfile = v
		}
	}
	if c.Daemon.Pidfile == "" {
		c.Daemon.Pidfile = Default().Daemon.Pidfile
	}
	return c.Abs(c.Daemon.Pidfile), nil
}

// rawPidfile reads daemon.pidfile from a file that does not validate: ok
// is false when the file sets none. The error is that of a file whose TOML
// does not parse.
func rawPidfile(path string) (p string, ok bool, err error) {
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return "", false, err
	}
	d, _ := raw["daemon"].(map[string]any)
	p, ok = d["pidfile"].(string)
	return p, ok && p != "", nil
}
