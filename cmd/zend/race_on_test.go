//go:build race

package main_test

// raceBuild: this test binary runs with the race detector, so the
// binaries under test are built with it too.
const raceBuild = true
