package daemon

import (
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// The sd_notify states zend sends (systemd's Type=notify).
const (
	sdReady     = sd.SdNotifyReady
	sdReloading = sd.SdNotifyReloading
	sdStopping  = sd.SdNotifyStopping
	sdWatchdog  = sd.SdNotifyWatchdog
)

// sdMonotonic is MONOTONIC_USEC=..., which systemd requires with
// RELOADING=1 (without it "systemctl reload" of a notify-reload unit hangs).
func sdMonotonic() string { return sd.SdNotifyMonotonicUsec() }

// sdNotify sends states in one datagram to $NOTIFY_SOCKET, if set.
func sdNotify(states ...string) {
	sd.SdNotify(false, strings.Join(states, "\n"))
}

// sdWatchdogInterval returns WatchdogSec= when systemd asks this process
// for watchdog pings, else 0.
func sdWatchdogInterval() time.Duration {
	iv, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return iv
}
