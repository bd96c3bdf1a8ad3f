package protocol

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
	m       map[string][]byte
	unknown []byte
}

// NewAnswers returns the built-in table with extra added on top; an entry of
// extra overrides a built-in answer for the same question. Keys are whole
// questions including their '?'.
func NewAnswers(extra map[string]string) *Answers {
	a := &Answers{m: make(map[string][]byte, len(builtin)+len(extra)), unknown: []byte(UnknownAnswer)}
	for q, ans := range builtin {
		a.m[q] = []byte(ans)
	}
	for q, ans := range extra {
		a.m[q] = []byte(ans)
	}
	return a
}

// Answer returns the answer to question q (which includes its '?'). The
// returned slice must not be modified.
func (a *Answers) Answer(q []byte) []byte {
	if a == nil {
		return []byte(UnknownAnswer)
	}
	if ans, ok := a.m[string(q)]; ok {
		return ans
	}
	return a.unknown
}

// Known reports whether q has an answer other than UnknownAnswer.
func (a *Answers) Known(q []byte) bool {
	if a == nil {
		return false
	}
	_, ok := a.m[string(q)]
	return ok
}

// Len returns the number of questions in the table.
func (a *Answers) Len() int {
	if a == nil {
		return 0
	}
	return len(a.m)
}
