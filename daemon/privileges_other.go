//go:build !linux

package daemon

// lockPrivileges has nothing to do where there are no Linux capabilities
// or no_new_privs: setuid alone drops root there.
func lockPrivileges() (note string, err error) { return "", nil }

// execNoNewPrivs has nothing to do without no_new_privs.
func execNoNewPrivs() error { return nil }

// undumpable has nothing to do where processes of one user cannot take
// each other's descriptors.
func undumpable() error { return nil }
