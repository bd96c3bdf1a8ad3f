//go:build !race

package main_test

// raceBuild: this test binary runs without the race detector, so the
// binaries under test are static, as the Debian package ships them.
const raceBuild = false
