package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"zend/protocol"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

const usageText = `usage: zen-client [-p PORT] [-e] [-ask "Question?"]... [-timeout D] HOST

Asks the three aphorisms in random order (or the -ask questions in order)
and prints each question with its answer.

  -p PORT       TCP port (default 1060)
  -e            send an incomplete question, then hang up (to see how the
                server logs it)
  -ask Q        ask Q instead (repeatable); a '?' is added when missing
  -timeout D    give up on connecting or on an answer after D (default 5s)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("zen-client", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.Int("p", 1060, "")
	cause := fs.Bool("e", false, "")
	timeout := fs.Duration("timeout", 5*time.Second, "")
	var asks multi
	fs.Var(&asks, "ask", "")
	// Flags may follow HOST too, as in "zen-client 127.0.0.1 -p 1061".
	var rest []string
	for a := args; ; {
		if err := fs.Parse(a); err != nil {
			if err == flag.ErrHelp {
				fmt.Fprint(stdout, usageText)
				return nil
			}
			fmt.Fprint(stderr, usageText)
			return &usageError{msg: err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		a = fs.Args()[1:]
	}
	if len(rest) != 1 {
		fmt.Fprint(stderr, usageText)
		return &usageError{msg: "need exactly one HOST"}
	}
	if *port < 1 || *port > 65535 {
		return &usageError{msg: "-p " + strconv.Itoa(*port) + ": allowed is 1 to 65535"}
	}
	addr := net.JoinHostPort(strings.Trim(rest[0], "[]"), strconv.Itoa(*port))

	questions := []string(asks)
	builtin := protocol.Builtin()
	if len(questions) == 0 {
		for q := range builtin {
			questions = append(questions, q)
		}
		rand.Shuffle(len(questions), func(i, j int) { questions[i], questions[j] = questions[j], questions[i] })
	}

	d := net.Dialer{Timeout: *timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", addr, unwrapOp(err))
	}
	defer c.Close()

	if *cause {
		q := questions[0]
		if _, err := io.WriteString(c, strings.TrimSuffix(q, "?")); err != nil {
			return fmt.Errorf("send to %s: %w", addr, unwrapOp(err))
		}
		fmt.Fprintf(stdout, "sent %q without its '?', hanging up\n", strings.TrimSuffix(q, "?"))
		return nil
	}

	r := bufio.NewReader(c)
	for _, q := range questions {
		if !strings.HasSuffix(q, "?") {
			q += "?"
		}
		c.SetDeadline(time.Now().Add(*timeout))
		if _, err := io.WriteString(c, q); err != nil {
			return fmt.Errorf("send %q to %s: %w", q, addr, unwrapOp(err))
		}
		ans, err := r.ReadBytes('.')
		if err != nil {
			if err == io.EOF {
				if len(ans) > 0 {
					return fmt.Errorf("server %s closed the connection in the middle of the answer to %q (got %q)", addr, q, ans)
				}
				return fmt.Errorf("server %s closed the connection without answering %q", addr, q)
			}
			return fmt.Errorf("no answer to %q from %s: %w", q, addr, unwrapOp(err))
		}
		fmt.Fprintf(stdout, "%s %s\n", q, ans)
		if want, ok := builtin[q]; ok && !bytes.Equal(ans, []byte(want)) && len(asks) == 0 {
			return fmt.Errorf("wrong answer to %q from %s: got %q, want %q", q, addr, ans, want)
		}
	}
	return nil
}

// unwrapOp drops the "dial tcp 127.0.0.1:1060:" prefix that repeats the
// address the message already names.
func unwrapOp(err error) error {
	var oe *net.OpError
	if ok := asOpError(err, &oe); ok && oe.Err != nil {
		return oe.Err
	}
	return err
}

func asOpError(err error, target **net.OpError) bool {
	for err != nil {
		if oe, ok := err.(*net.OpError); ok {
			*target = oe
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
