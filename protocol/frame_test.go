package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		max        int
		start, end int
		err        error
	}{
		// A whole question.
		{"whole", "Beautiful is better than?", 1024, 0, 25, nil},
		// Leading whitespace of every kind is skipped.
		{"leading whitespace", " \t\r\nSimple is better than?", 1024, 4, 26, nil},
		// Only the first question of a pipelined read is returned.
		{"pipelined", "A?B?", 1024, 0, 2, nil},
		// The empty question is a question.
		{"empty question", "?", 1024, 0, 1, nil},
		// Whitespace after the previous '?' then an empty question.
		{"newline then ?", "\n?", 1024, 1, 2, nil},
		// No '?' yet: more bytes are needed.
		{"partial", "Beautiful is", 1024, 0, -1, nil},
		// Only whitespace: nothing pending.
		{"only whitespace", "\r\n\r\n", 1024, 4, -1, nil},
		// Nothing at all.
		{"empty", "", 1024, 0, -1, nil},
		// A question of exactly max bytes with its '?' fits.
		{"exactly max", "abc?", 4, 0, 4, nil},
		// One byte more does not, even when complete.
		{"complete but too long", "abcd?", 4, 0, -1, ErrQuestionTooLong},
		// max bytes without '?' can only become too long.
		{"partial at max", "abcd", 4, 0, -1, ErrQuestionTooLong},
		// One byte under max without '?' may still fit.
		{"partial under max", "abc", 4, 0, -1, nil},
		// Whitespace before a question does not count towards max.
		{"whitespace not counted", "    abc?", 4, 4, 8, nil},
		// Binary bytes are part of a question.
		{"binary", "\x00\xff\x01?", 1024, 0, 4, nil},
		// max <= 0 is no limit.
		{"no limit", string(bytes.Repeat([]byte("x"), 5000)), 0, 0, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end, err := Split([]byte(tt.in), tt.max)
			if start != tt.start || end != tt.end || !errors.Is(err, tt.err) {
				t.Errorf("Split(%q, %d) = %d, %d, %v; want %d, %d, %v", tt.in, tt.max, start, end, err, tt.start, tt.end, tt.err)
			}
		})
	}
}

// frameAll splits b into questions the way a conversation does, fed in
// chunks of the given sizes (cycled), and returns the questions and whether
// the limit was hit.
func frameAll(b []byte, chunks []int, max int) (qs []string, tooLong bool) {
	var pending []byte
	ci := 0
	for len(b) > 0 {
		n := chunks[ci%len(chunks)]
		ci++
		if n <= 0 || n > len(b) {
			n = len(b)
		}
		data := append(pending, b[:n]...)
		b = b[n:]
		for {
			start, end, err := Split(data, max)
			if err != nil {
				return qs, true
			}
			if end < 0 {
				pending = append([]byte(nil), data[start:]...)
				break
			}
			qs = append(qs, string(data[start:end]))
			data = data[end:]
		}
	}
	return qs, false
}

// FuzzSplit checks that framing does not depend on how the bytes are cut
// into reads, that every question ends in its only '?', and that nothing
// but leading whitespace is dropped.
func FuzzSplit(f *testing.F) {
	f.Add([]byte("Beautiful is better than?Explicit is better than?"), uint8(3), uint16(1024))
	f.Add([]byte("  \r\nSimple is better than?\n"), uint8(1), uint16(1024))
	f.Add([]byte("??"), uint8(1), uint16(1))
	f.Add([]byte("Beautiful is better than"), uint8(7), uint16(10))
	f.Add([]byte("\x00\xff?\t?"), uint8(2), uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8, max16 uint16) {
		max := int(max16)
		whole, wholeLong := frameAll(b, []int{len(b)}, max)
		cut, cutLong := frameAll(b, []int{int(chunk%17) + 1, 1, int(chunk)}, max)
		if wholeLong != cutLong || len(whole) != len(cut) {
			t.Fatalf("framing depends on reads: whole %q (%v), cut %q (%v)", whole, wholeLong, cut, cutLong)
		}
		var rebuilt []byte
		for i, q := range whole {
			if q != cut[i] {
				t.Fatalf("question %d: %q vs %q", i, q, cut[i])
			}
			if len(q) == 0 || q[len(q)-1] != '?' || bytes.Count([]byte(q), []byte("?")) != 1 {
				t.Fatalf("question %q does not end in its only '?'", q)
			}
			if isSpace(q[0]) && len(q) > 1 {
				t.Fatalf("question %q starts with whitespace", q)
			}
			if max > 0 && len(q) > max {
				t.Fatalf("question %q longer than %d", q, max)
			}
			rebuilt = append(rebuilt, q...)
		}
		if !wholeLong {
			stripped, rb := stripSpace(b), stripSpace(rebuilt)
			if !bytes.HasPrefix(stripped, rb) || bytes.Contains(stripped[len(rb):], []byte("?")) {
				t.Fatalf("questions %q lose bytes of %q", whole, b)
			}
		}
	})
}

// stripSpace drops every whitespace byte that may precede a question.
func stripSpace(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if !isSpace(c) {
			out = append(out, c)
		}
	}
	return out
}
