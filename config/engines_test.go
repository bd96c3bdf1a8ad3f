package config

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestEnginesOfThisSystem checks server.engine against the engines this
// system has: every one loads, and eventloop elsewhere than Linux is an
// error that names the system and the engines it has.
func TestEnginesOfThisSystem(t *testing.T) {
	for _, e := range Engines {
		if _, err := (Source{Path: write(t, "[server]\nengine = \""+e+"\"\n")}).Load(); err != nil {
			t.Errorf("engine %s: %v", e, err)
		}
	}
	_, err := Source{Path: write(t, "[server]\nengine = \"eventloop\"\n")}.Load()
	if runtime.GOOS == "linux" {
		if err != nil || !slices.Contains(Engines, "eventloop") {
			t.Fatalf("eventloop on Linux: %v (engines %v)", err, Engines)
		}
		return
	}
	want := "zend.toml:2: server.engine: unknown engine \"eventloop\": allowed on " + runtime.GOOS + " are single, pool, goroutine (eventloop runs on Linux's epoll only)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("eventloop on %s: got %v, want %q", runtime.GOOS, err, want)
	}
}
