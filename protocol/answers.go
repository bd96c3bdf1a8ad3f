package protocol

import "sync/atomic"

// UnknownAnswer is the answer to every question that is not in the table,
// the empty question "?" included.
const UnknownAnswer = "Error: unknown aphorism."

// builtin holds the three aphorisms of the chapter's listing 7-1.
var builtin = map[string]string{
	"Beautiful is better than?": "Ugly.",
	"Explicit is better than?":  "Implicit.",
	"Simple is better than?":    "Complex.",
}

// Builtin returns a copy of the three built-in question/answer pairs.
func Builtin() map[string]string {
	m := make(map[string]string, len(builtin))
	for q, a := range builtin {
		m[q] = a
	}
	return m
}

// Answers is an immutable answer table. The zero value and nil answer every
// question with UnknownAnswer.
type Answers struct {
	m       map[string]entry
	unknown entry
}

// entry is an answer and the counter of how often it was given (nil until
// a Server adopts the table).
type entry struct {
	ans  []byte
	hits *atomic.Uint64
}

// NewAnswers returns the built-in table with extra added on top; an entry of
// extra overrides a built-in answer for the same question. Keys are whole
// questions including their '?'.
func NewAnswers(extra map[string]string) *Answers {
	a := &Answers{m: make(map[string]entry, len(builtin)+len(extra)), unknown: entry{ans: []byte(UnknownAnswer)}}
	for q, ans := range builtin {
		a.m[q] = entry{ans: []byte(ans)}
	}
	for q, ans := range extra {
		a.m[q] = entry{ans: []byte(ans)}
	}
	return a
}

// counted returns a copy of a whose entries count into counter(answer),
// and whose unknown answer counts into unknown.
func (a *Answers) counted(counter func(answer string) *atomic.Uint64, unknown *atomic.Uint64) *Answers {
	if a == nil {
		a = NewAnswers(nil)
	}
	c := &Answers{m: make(map[string]entry, len(a.m)), unknown: entry{ans: a.unknown.ans, hits: unknown}}
	for q, e := range a.m {
		c.m[q] = entry{ans: e.ans, hits: counter(string(e.ans))}
	}
	return c
}

// Answer returns the answer to question q (which includes its '?'). The
// returned slice must not be modified.
func (a *Answers) Answer(q []byte) []byte {
	if a == nil {
		return []byte(UnknownAnswer)
	}
	e, ok := a.m[string(q)]
	if !ok {
		e = a.unknown
	}
	if e.hits != nil {
		e.hits.Add(1)
	}
	return e.ans
}
