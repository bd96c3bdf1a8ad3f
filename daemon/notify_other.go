//go:build !linux

package daemon

import "time"

// Without systemd there is no $NOTIFY_SOCKET to tell: zend's sd_notify
// calls do nothing (notify_linux.go sends them).

// The sd_notify states zend sends (systemd's Type=notify).
const (
	sdReady     = "READY=1"
	sdReloading = "RELOADING=1"
	sdStopping  = "STOPPING=1"
	sdWatchdog  = "WATCHDOG=1"
)

// sdMonotonic is MONOTONIC_USEC=..., which systemd requires with
// RELOADING=1.
func sdMonotonic() string { return "" }

// sdNotify sends states to systemd, which this system does not have.
func sdNotify(...string) {}

// sdWatchdogInterval returns 0: no service manager asks for pings here.
func sdWatchdogInterval() time.Duration { return 0 }
