package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
)

// Error is one problem with the configuration: where it is (a file and
// line, an environment variable or a command-line flag), the key, and what
// is wrong with what is allowed.
type Error struct {
	Source string // file name, "environment ZEND_X" or "flag -set"
	Line   int    // line in Source, 0 when unknown or not a file
	Key    string // dotted key such as "limits.max_connections"
	Msg    string
}

func (e *Error) Error() string {
	loc := e.Source
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		return loc + ": " + e.Key + ": " + e.Msg
	}
	return loc + ": " + e.Msg
}

// ErrInvalid is matched (errors.Is) by every error of Load, Validate,
// ApplyEnv and Set that is about the configuration's content, as opposed to
// a file that cannot be read.
var ErrInvalid = errors.New("invalid configuration")

// Is makes errors.Is(err, ErrInvalid) true for an *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

type origin struct {
	source string
	line   int
}

// Load reads the TOML file at path on top of Default. It does not apply the
// environment and does not validate: call ApplyEnv, Set and Validate next.
// It returns an error wrapping the *os.PathError when the file cannot be
// read (errors.Is(err, fs.ErrNotExist) when it does not exist), and an
// error matching ErrInvalid, listing every problem found, when the file is
// not valid TOML, has keys zend does not know, or has values of the wrong
// type.
func Load(path string) (*Config, error) {
	data, err := readConfig(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c := Default()
	if abs, err := filepath.Abs(path); err == nil {
		c.Path = abs
	} else {
		c.Path = path
	}
	if line := tooDeep(data, maxNesting); line > 0 {
		return nil, &Error{Source: path, Line: line, Msg: fmt.Sprintf("values nested more than %d deep in [ and {: allowed is at most %d (zend's keys need 1)", maxNesting, maxNesting)}
	}
	// The syntax first: a file that does not parse has no keys to check.
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Source: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: describeParse(pe)}
		}
		return nil, decodeError(path, err)
	}
	// Then every key on its own, so that one file's problems are all
	// reported at once: unknown keys, wrong types, and (once the rest
	// decoded) values out of range.
	lines := locateKeys(string(data))
	var errs []error
	bad := map[string]bool{} // keys that did not decode: Validate is not asked about them
	fail := func(key string, err error) {
		bad[key] = true
		e := decodeError(path, err)
		if ce, ok := e.(*Error); ok {
			ce.Key, ce.Line = key, lines[key]
			ce.Msg = describeParse(toml.ParseError{Message: ce.Msg, LastKey: key})
		}
		errs = append(errs, e)
	}
	c.origin = make(map[string]origin)
	for _, k := range md.Keys() {
		c.origin[k.String()] = origin{source: path, line: lines[k.String()]}
	}
	for _, name := range sortedKeys(top) {
		if name == "answers" {
			var answers map[string]toml.Primitive
			if err := md.PrimitiveDecode(top[name], &answers); err != nil {
				fail(name, err)
				continue
			}
			for _, q := range sortedKeys(answers) {
				var a string
				if err := md.PrimitiveDecode(answers[q], &a); err != nil {
					fail(toml.Key{"answers", q}.String(), err)
					continue
				}
				if c.Answers == nil {
					c.Answers = map[string]string{}
				}
				c.Answers[q] = a
			}
			continue
		}
		if !isTable(name) {
			errs = append(errs, &Error{Source: path, Line: lines[name], Key: name, Msg: unknownMsg(toml.Key{name})})
			continue
		}
		var keys map[string]toml.Primitive
		if err := md.PrimitiveDecode(top[name], &keys); err != nil {
			fail(name, err)
			continue
		}
		for _, k := range sortedKeys(keys) {
			key := name + "." + k
			f, ok := fieldByKey[key]
			if !ok {
				errs = append(errs, &Error{Source: path, Line: lines[key], Key: key, Msg: unknownMsg(toml.Key{name, k})})
				continue
			}
			v := reflect.New(f.typ)
			if err := md.PrimitiveDecode(keys[k], v.Interface()); err != nil {
				fail(key, err)
				continue
			}
			fieldValue(c, f).Set(v.Elem())
		}
	}
	if len(errs) > 0 {
		if verr := c.Validate(); verr != nil {
			for _, e := range unjoin(verr) {
				var ce *Error
				if errors.As(e, &ce) && bad[ce.Key] {
					continue
				}
				errs = append(errs, e)
			}
		}
		// In the order of the file, as an operator fixes them.
		slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// lineOf is the line an error names, with errors naming none last.
func lineOf(err error) int {
	var ce *Error
	if errors.As(err, &ce) && ce.Line > 0 {
		return ce.Line
	}
	return math.MaxInt
}

// sortedKeys returns m's keys in order, so errors come in a stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// isTable reports whether name is one of zend's tables.
func isTable(name string) bool { return slices.Contains(tables(), "["+name+"]") }

// unjoin returns the errors err joins (err itself when it joins none).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// typeErr matches the library's type errors, which are not ParseErrors:
// toml: line 3 (last key "server.workers"): incompatible types: ...
var typeErr = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

// decodeError turns an error of the decoder that is not a ParseError into
// an *Error with the line and key it names.
func decodeError(path string, err error) error {
	m := typeErr.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{Source: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	key, uerr := strconv.Unquote(m[2])
	if uerr != nil {
		key = m[2]
	}
	return &Error{Source: path, Line: line, Key: key, Msg: describeParse(toml.ParseError{Message: m[3], LastKey: key})}
}

// describeParse rewrites the library's messages into what is allowed.
func describeParse(pe toml.ParseError) string {
	msg := pe.Message
	if strings.HasPrefix(msg, "incompatible types:") && pe.LastKey != "" {
		if f, ok := fieldByKey[pe.LastKey]; ok {
			return fmt.Sprintf("wrong type (%s): allowed is %s", strings.TrimPrefix(msg, "incompatible types: "), f.allowed())
		}
		if strings.HasPrefix(pe.LastKey, "answers.") {
			return "wrong type: an answer is a string such as \"Yes.\""
		}
	}
	return msg
}

// unknownMsg says that k is not a key zend knows and lists the ones it does.
func unknownMsg(k toml.Key) string {
	if len(k) == 1 {
		return "unknown table or key; allowed tables are " + strings.Join(tables(), ", ")
	}
	var names []string
	for _, f := range fields {
		if f.table == k[0] {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return "unknown table [" + k[0] + "]; allowed tables are " + strings.Join(tables(), ", ")
	}
	return "unknown key; allowed keys in [" + k[0] + "] are " + strings.Join(names, ", ")
}

func tables() []string {
	seen := map[string]bool{"answers": true}
	out := []string{"[answers]"}
	for _, f := range fields {
		if !seen[f.table] {
			seen[f.table] = true
			out = append(out, "["+f.table+"]")
		}
	}
	sort.Strings(out)
	return out
}

// locateKeys maps each dotted key of a TOML text (as toml.Key.String
// writes it) to the line that sets it, for error messages: the library
// reports no position for keys it did not decode, nor for values that pass
// its parser but not Validate.
func locateKeys(text string) map[string]int {
	lines := make(map[string]int)
	var table toml.Key
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			end := strings.LastIndexByte(line, ']')
			if end < 0 {
				continue
			}
			inner := strings.Trim(line[:end+1], "[]")
			table = splitKey(inner)
			if _, ok := lines[table.String()]; !ok {
				lines[table.String()] = i + 1
			}
			continue
		}
		eq := keyEnd(line)
		if eq < 0 {
			continue
		}
		k := append(append(toml.Key{}, table...), splitKey(line[:eq])...)
		if _, ok := lines[k.String()]; !ok {
			lines[k.String()] = i + 1
		}
	}
	return lines
}

// keyEnd returns the index of the '=' after a key, outside quotes, or -1.
func keyEnd(line string) int {
	var q byte
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case q != 0:
			if ch == '\\' && q == '"' {
				i++
			} else if ch == q {
				q = 0
			}
		case ch == '"' || ch == '\'':
			q = ch
		case ch == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted TOML key, unquoting quoted parts.
func splitKey(s string) toml.Key {
	var k toml.Key
	s = strings.TrimSpace(s)
	for s != "" {
		var part string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return append(k, s)
			}
			if u, err := strconv.Unquote(s[:end+1]); err == nil {
				part = u
			} else {
				part = s[1:end]
			}
			s = s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return append(k, s)
			}
			part = s[1 : end+1]
			s = s[end+2:]
		default:
			end := strings.IndexByte(s, '.')
			if end < 0 {
				end = len(s)
			}
			part = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		k = append(k, part)
		s = strings.TrimSpace(s)
		s = strings.TrimPrefix(s, ".")
		s = strings.TrimSpace(s)
	}
	return k
}

// maxNesting bounds how deep arrays and inline tables may nest: the TOML
// parser takes time quadratic in the depth ("a = {b={b={b=..." of 50,000
// levels took minutes, and stalled FuzzLoad), and no key of zend's needs
// more than one level.
const maxNesting = 16

// tooDeep returns the line where arrays and inline tables in data nest
// deeper than limit, or 0. It skips strings and comments, so brackets in
// an answer do not count; on malformed TOML it may miscount, but never
// past a valid file's depth, and the parser reports the malformation.
func tooDeep(data []byte, limit int) int {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			triple := i+2 < len(data) && data[i+1] == c && data[i+2] == c
			if triple {
				i += 3
			} else {
				i++
			}
			for ; i < len(data); i++ {
				switch {
				case data[i] == '\\' && c == '"' && i+1 < len(data):
					i++
					if data[i] == '\n' {
						line++
					}
				case data[i] == '\n':
					if !triple {
						i-- // an unterminated string: the parser says so
						goto next
					}
					line++
				case data[i] == c && (!triple || (i+2 < len(data) && data[i+1] == c && data[i+2] == c)):
					if triple {
						i += 2
					}
					goto next
				}
			}
		case '[', '{':
			if depth++; depth > limit {
				return line
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	next:
	}
	return 0
}

// maxConfig bounds a configuration file: 1,000 answers of 1 KiB and their
// questions fit with room to spare.
const maxConfig = 4 << 20

// errNotRegular is wrapped by the error of a configuration path that is
// not a regular file.
var errNotRegular = errors.New("not a regular file")

// readConfig reads a configuration file: a regular file of at most
// maxConfig bytes. A FIFO or a device someone put at the path must not
// stall zend (open is non-blocking, and only a regular file is read).
func readConfig(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, errNotRegular)
	}
	if fi.Size() > maxConfig {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a configuration may have", path, fi.Size(), maxConfig)
	}
	return io.ReadAll(io.LimitReader(f, maxConfig+1))
}
