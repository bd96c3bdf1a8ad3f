package main_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestInZenLinksLittle: inetd starts one in-zen1 per connection, so what
// in-zen1 links, every client pays for at its start. in-zen1 and in-zen2
// must not link the metrics stack (Prometheus, and protobuf, whose init
// opens and hashes the executable at every start), an HTTP server, or the
// daemon package that brings them. (Seen: 264 packages and protobuf's
// init at every in-zen1 start.)
func TestInZenLinksLittle(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "zend/cmd/in-zen1", "zend/cmd/in-zen2").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := regexp.MustCompile(`^(github\.com/prometheus/.*|google\.golang\.org/protobuf/.*|net/http|expvar|crypto/tls|zend/daemon)$`)
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if forbidden.MatchString(p) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("in-zen1 or in-zen2 links %s", strings.Join(bad, ", "))
	}
}
