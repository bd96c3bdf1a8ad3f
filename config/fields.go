package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// field is one scalar key of the configuration.
type field struct {
	table, name string // "limits", "max_connections"
	env         string // "ZEND_MAX_CONNECTIONS"
	index       []int  // reflect path from Config
	typ         reflect.Type
}

func (f field) key() string { return f.table + "." + f.name }

// allowed describes the values of f's type.
func (f field) allowed() string {
	switch f.typ {
	case reflect.TypeFor[Duration]():
		return "a duration string such as \"30s\" or \"5m\""
	case reflect.TypeFor[[]string]():
		return "a list of strings such as [\"127.0.0.1:1060\"]"
	}
	switch f.typ.Kind() {
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	default:
		return "a string"
	}
}

var (
	fields     = buildFields()
	fieldByKey = func() map[string]field {
		m := make(map[string]field, len(fields))
		for _, f := range fields {
			m[f.key()] = f
		}
		return m
	}()
	fieldByEnv = func() map[string]field {
		m := make(map[string]field, len(fields))
		for _, f := range fields {
			m[f.env] = f
		}
		return m
	}()
)

func buildFields() []field {
	var out []field
	ct := reflect.TypeFor[Config]()
	for i := 0; i < ct.NumField(); i++ {
		sec := ct.Field(i)
		if sec.Type.Kind() != reflect.Struct {
			continue
		}
		table := sec.Tag.Get("toml")
		for j := 0; j < sec.Type.NumField(); j++ {
			f := sec.Type.Field(j)
			out = append(out, field{
				table: table,
				name:  f.Tag.Get("toml"),
				env:   f.Tag.Get("env"),
				index: []int{i, j},
				typ:   f.Type,
			})
		}
	}
	return out
}

// EnvConfig names the environment variable that names the configuration
// file (as -c does).
const EnvConfig = "ZEND_CONFIG"

// EnvSyslogSocket names the environment variable that replaces /dev/log,
// for tests only: a test owns a socket standing in for syslog. It is not
// a configuration key, and not listed among the variables.
const EnvSyslogSocket = "ZEND_SYSLOG_SOCKET"

// ApplyEnv applies every ZEND_* variable of environ (as os.Environ returns
// it) on top of c. A ZEND_* variable that zend does not know, or a value
// that does not parse, is an error matching ErrInvalid; all of them are
// reported together.
func (c *Config) ApplyEnv(environ []string) error {
	var errs []error
	sort.Strings(environ)
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "ZEND_") || name == EnvConfig || name == EnvSyslogSocket {
			continue
		}
		f, ok := fieldByEnv[name]
		if !ok {
			errs = append(errs, &Error{Source: "environment " + name, Msg: "unknown variable; allowed are " + strings.Join(envNames(), ", ")})
			continue
		}
		if err := c.set(f, value, origin{source: "environment " + name}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func envNames() []string {
	var names []string
	names = append(names, EnvConfig)
	for _, f := range fields {
		names = append(names, f.env)
	}
	sort.Strings(names)
	return names
}

// Set sets the scalar key ("limits.max_connections", "server.listen") from
// its string form, as the environment does: lists are comma-separated,
// durations like "30s". source says where the value came from, for error
// messages ("flag -set"). It returns an error matching ErrInvalid when the
// key is unknown or the value does not parse.
func (c *Config) Set(key, value, source string) error {
	f, ok := fieldByKey[key]
	if !ok {
		keys := make([]string, 0, len(fields))
		for _, f := range fields {
			keys = append(keys, f.key())
		}
		return &Error{Source: source, Key: key, Msg: "unknown key; allowed are " + strings.Join(keys, ", ")}
	}
	return c.set(f, value, origin{source: source})
}

func (c *Config) set(f field, value string, o origin) error {
	v := reflect.ValueOf(c).Elem().FieldByIndex(f.index)
	bad := func(why string) error {
		return &Error{Source: o.source, Line: o.line, Key: f.key(), Msg: fmt.Sprintf("%s %q: allowed is %s", why, value, f.allowed())}
	}
	switch f.typ {
	case reflect.TypeFor[Duration]():
		var d Duration
		if err := d.UnmarshalText([]byte(value)); err != nil {
			return &Error{Source: o.source, Key: f.key(), Msg: err.Error()}
		}
		v.Set(reflect.ValueOf(d))
	case reflect.TypeFor[[]string]():
		var list []string
		for _, s := range strings.Split(value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		switch f.typ.Kind() {
		case reflect.String:
			v.SetString(value)
		case reflect.Int:
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				return bad("not an integer:")
			}
			v.SetInt(int64(n))
		case reflect.Bool:
			b, err := strconv.ParseBool(strings.TrimSpace(value))
			if err != nil {
				return bad("not a boolean:")
			}
			v.SetBool(b)
		}
	}
	if c.origin == nil {
		c.origin = make(map[string]origin)
	}
	c.origin[f.key()] = o
	return nil
}
