package config

import (
	"fmt"
	"reflect"
	"slices"
)

// restartOnly are the keys a running zend cannot change: a reload keeps
// their running value and reports them until a restart.
var restartOnly = []string{
	"server.engine", "server.workers", "server.backlog",
	"daemon.pidfile", "daemon.user", "daemon.group", "daemon.umask",
	"metrics.listen",
	"log.file", "log.max_size_mb", "log.max_backups", "log.max_age_days", "log.compress",
}

// pathKeys are compared as the paths they name, relative to their file.
var pathKeys = map[string]bool{"daemon.pidfile": true, "log.file": true}

// RestartOnlyKeys lists the keys a reload cannot change.
func RestartOnlyKeys() []string { return slices.Clone(restartOnly) }

// fieldValue returns the value of f in c (settable).
func fieldValue(c *Config, f field) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(f.index)
}

// keyValue returns the value of key in c, a path made absolute.
func keyValue(c *Config, key string) any {
	v := fieldValue(c, fieldByKey[key]).Interface()
	if s, ok := v.(string); ok && pathKeys[key] && !(key == "log.file" && IsLogService(s)) {
		return c.Abs(s)
	}
	return v
}

// InForce returns the configuration a running zend applies when asked to
// reload requested while running runs: requested, with every restart-only
// key at its running value (and server.listen too when fixedListen: the
// sockets came from systemd). pending lists the keys whose requested value
// waits for a restart, as "key: running -> requested". Neither argument is
// changed.
func InForce(running, requested *Config, fixedListen bool) (eff *Config, pending []string) {
	c := *requested
	eff = &c
	for _, key := range restartOnly {
		was, want := keyValue(running, key), keyValue(requested, key)
		if !reflect.DeepEqual(was, want) {
			pending = append(pending, fmt.Sprintf("%s: %v -> %v", key, was, want))
		}
		fieldValue(eff, fieldByKey[key]).Set(reflect.ValueOf(was))
	}
	if fixedListen {
		if !slices.Equal(running.Server.Listen, requested.Server.Listen) {
			pending = append(pending, fmt.Sprintf("server.listen: %v -> %v (the sockets are systemd's: change the socket unit)", running.Server.Listen, requested.Server.Listen))
		}
		eff.Server.Listen = running.Server.Listen
	}
	return eff, pending
}
