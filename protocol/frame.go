package protocol

import (
	"bytes"
	"errors"
)

// ErrQuestionTooLong reports a question longer than the limit of bytes
// allowed before its '?'.
var ErrQuestionTooLong = errors.New("question too long")

// isSpace reports whether b is whitespace that may precede a question.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\r' || b == '\n'
}

// Split finds the next question in buf. Whitespace before the question is
// skipped: start is the index of the question's first byte. It returns:
//
//   - (start, end, nil) with end > start when buf[start:end] is a whole
//     question ending in '?'; the caller consumes buf[:end];
//   - (start, -1, nil) when buf[start:] is the beginning of a question (or
//     empty) and more bytes are needed; the caller may drop buf[:start];
//   - (start, -1, ErrQuestionTooLong) when the question starting at start
//     is, or will be, longer than max bytes including its '?'.
//
// max <= 0 means no limit.
func Split(buf []byte, max int) (start, end int, err error) {
	for start < len(buf) && isSpace(buf[start]) {
		start++
	}
	rest := buf[start:]
	i := bytes.IndexByte(rest, '?')
	if i < 0 {
		if max > 0 && len(rest) >= max {
			return start, -1, ErrQuestionTooLong
		}
		return start, -1, nil
	}
	if max > 0 && i+1 > max {
		return start, -1, ErrQuestionTooLong
	}
	return start, start + i + 1, nil
}
