package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"zend/config"
	"zend/daemon/logsink"
	"zend/daemon/trust"
)

// Preflight checks, without changing anything, what zend will need from
// the system beyond a valid configuration, as the user running it:
// daemon.user and daemon.group exist and the user can read the
// configuration file (every reload and upgrade reads it as that user);
// with daemon (start, not run), the pidfile folder exists or can be
// created, and only root (or this user) can change it; the log folder can
// be written by the user the daemon logs as (or created), and nobody else
// can create files in it; the log file, if there, is a regular file; every
// listen address resolves. It returns nil, or every problem found
// (errors.Join), each a *config.Error at the place the key was set. "zend
// check" (as for start), "zend start" and every daemon and "zend run" at
// start-up call it, so a check that passes does not fail at start for one
// of these reasons.
func Preflight(cfg *config.Config, daemon bool) error {
	var errs []error
	bad := func(key string, err error, allowed string) {
		errs = append(errs, cfg.Problem(key, "%v: allowed is %s", err, allowed))
	}
	cred, err := lookupCredential(cfg.Daemon.User, cfg.Daemon.Group)
	if err != nil {
		errs = append(errs, cfg.Problem("daemon.user", "%v: allowed is an existing user (and group), such as \"zend\"", err))
	}
	// Who starts zend: root, for a configuration with a user to drop to
	// that an ordinary user is checking (ExecStartPre= of a unit with
	// User=); what depends on root's rights is not checked then.
	rootStarts := os.Geteuid() == 0 || cred != nil
	if cred != nil && (os.Geteuid() != 0 || cred.uid == 0) {
		cred = nil // nothing to drop: the daemon runs as this user
	}
	if cred != nil && cfg.Path != "" {
		if err := readableBy(cfg.Path, cred); err != nil {
			bad("daemon.user", err, "a configuration file "+cred.user+" can read, such as mode 0644 (every reload and upgrade reads it as that user)")
		}
	}
	if os.Geteuid() == 0 && cfg.Path != "" {
		// Root acts on what the file says (the pidfile to remove, the
		// user to run as, the folders to create): only root may change
		// it, or what leads to it.
		if err := configRootOnly(cfg.Path, trust.Trusted); err != nil {
			errs = append(errs, err)
		}
	}
	if daemon {
		pidDir := filepath.Dir(cfg.Abs(cfg.Daemon.Pidfile))
		if err := creatable(pidDir, true); err != nil {
			bad("daemon.pidfile", err, "a file in a folder only root can change (owned by root, not writable by group or others, such as /run/zend), or in one root can create there")
		}
	}
	defLog := ""
	if daemon {
		defLog = config.DefaultLogFile
	}
	if p := logsink.FilePath(cfg, defLog); p != "" && !config.IsLogService(p) && (rootStarts == (os.Geteuid() == 0)) {
		allowed := "a file in a folder the daemon can write"
		if cred != nil {
			allowed = fmt.Sprintf("a file in a folder %s owns (or one root can create for it) and nobody else can write, such as /var/log/zend owned by %s, mode 0750", cred.user, cred.user)
		} else if os.Geteuid() == 0 {
			allowed = "a file in a folder only root can change (zend running as root writes its log only there), or set daemon.user"
		}
		if err := logDirUsable(filepath.Dir(p), cred); err != nil {
			bad("log.file", err, allowed)
		} else if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
			bad("log.file", fmt.Errorf("%s is not a regular file (%v)", p, fi.Mode().Type()), allowed)
		}
	}
	for _, a := range append([]string{cfg.Metrics.Listen}, cfg.Server.Listen...) {
		if a == "" {
			continue
		}
		key := "server.listen"
		if a == cfg.Metrics.Listen {
			key = "metrics.listen"
		}
		if _, err := net.ResolveTCPAddr("tcp", a); err != nil {
			bad(key, err, "an address whose host resolves, such as \"127.0.0.1:1060\"")
		}
	}
	return errors.Join(errs...)
}

// rootOnly checks that path (a file) and the folders leading to it can be
// changed by root only (see trust.ResolveTrusted for the folders). The file's own
// folder may be a sticky one (/tmp): nobody else can replace a file of
// root's there. A link at path is followed when root owns it, and what it
// leads to is held to the same rule.
func rootOnly(path string) error { return rootOnlyBy(path, trust.Trusted) }

// rootOnlyBy is rootOnly with owners deciding whose files, folders and
// links are trust.Trusted.
func rootOnlyBy(path string, owners func(uint32) bool) error {
	for links := 0; ; links++ {
		dir, err := trust.ResolveFoldersBy(filepath.Dir(path), 0, false, owners)
		if err != nil {
			return err
		}
		full := filepath.Join(dir, filepath.Base(path))
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return rootOwnedFile(path, &st, owners)
		}
		if !owners(st.Uid) {
			return trust.Untrusted(full, fmt.Sprintf("a symbolic link owned by uid %d", st.Uid))
		}
		if links == trust.MaxLinks {
			return fmt.Errorf("%s: too many symbolic links", path)
		}
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		path = target
	}
}

// configRootOnly is the rule for the configuration of a daemon root
// starts (at start, and on every reload): rootOnlyBy, with the error an
// operator reads.
func configRootOnly(path string, owners func(uint32) bool) error {
	if err := rootOnlyBy(path, owners); err != nil {
		return fmt.Errorf("configuration %s: %w: allowed is a file only root can change, in folders only root can change, such as /etc/zend.toml", path, err)
	}
	return nil
}

// rootOwnedFile checks that the file path (st) is root's and nobody
// else may write it.
func rootOwnedFile(path string, st *unix.Stat_t, owners func(uint32) bool) error {
	switch {
	case !owners(st.Uid):
		return fmt.Errorf("%s is owned by uid %d, not root", path, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s (mode %04o) can be written by group or others", path, st.Mode&0o7777)
	}
	return nil
}

// readableBy checks that cred may read path, by its mode bits.
func readableBy(path string, cred *credential) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	switch {
	case int(st.Uid) == cred.uid && st.Mode&0o400 != 0:
	case int(st.Gid) == cred.gid && st.Mode&0o040 != 0:
	case st.Mode&0o004 != 0:
	default:
		return fmt.Errorf("%s (uid %d, gid %d, mode %04o) cannot be read by %s", path, st.Uid, st.Gid, st.Mode&0o7777, cred.user)
	}
	return nil
}

// creatable checks that dir exists or that this process can create it in
// its nearest existing ancestor; with mustTrust, that only root or this
// user can change what leads to it (see trust.ResolveTrusted).
func creatable(dir string, mustTrust bool) error {
	existing := dir
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}
	if mustTrust {
		if _, err := trust.ResolveTrusted(existing, 0); err != nil {
			return err
		}
	}
	// Whether it can be created depends on who starts zend: root can
	// (what is in the way was checked above); an ordinary user checking
	// a file that root will start (ExecStartPre= of a unit with User=)
	// is not told that it could not.
	if existing != dir && os.Geteuid() != 0 {
		var st unix.Stat_t
		if unix.Stat(existing, &st) == nil && int(st.Uid) == os.Geteuid() {
			if err := unix.Access(existing, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("cannot create %s in %s (as uid %d): %w", dir, existing, os.Geteuid(), err)
			}
		}
	}
	return nil
}

// logDirUsable checks that the log folder can be written (or created) by
// the user the daemon logs as: cred after the drop, else this process.
func logDirUsable(dir string, cred *credential) error {
	if cred == nil {
		if os.Geteuid() == 0 {
			return creatable(dir, true)
		}
		if _, err := os.Stat(dir); err == nil {
			if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("folder %s is not writable by uid %d: %w", dir, os.Geteuid(), err)
			}
			return nil
		}
		return creatable(dir, false)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w", dir, err)
		}
		// Missing: root creates it for the user when only root can
		// change its parent; otherwise the user must be able to.
		if _, err := trust.ResolveTrusted(filepath.Dir(dir), 0); err == nil {
			return nil
		}
		return fmt.Errorf("%s does not exist and its parent is not root's: create it, owned by %s", dir, cred.user)
	}
	if err := othersCannotWrite(dir, &st, cred); err != nil {
		return err
	}
	switch {
	case int(st.Uid) == cred.uid && st.Mode&0o300 == 0o300:
	case int(st.Gid) == cred.gid && st.Mode&0o030 == 0o030:
	case st.Mode&0o003 == 0o003:
	default:
		return fmt.Errorf("folder %s (uid %d, gid %d, mode %04o) is not writable by daemon.user %s, who opens the log after dropping privileges: chown %s %s",
			dir, st.Uid, st.Gid, st.Mode&0o7777, cred.user, cred.user, dir)
	}
	return nil
}
