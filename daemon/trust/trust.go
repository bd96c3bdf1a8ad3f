// Package trust is zend's ownership model for the files root relies on:
// folders that only root (or the user running zend) can change, reached
// through folders nobody else can change, and files opened in them with
// openat and O_NOFOLLOW (OpenDir), so that a link another user plants
// cannot redirect root's write. It imports no other zend package.
package trust

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The ownership model (README, Security): files that root writes (the
// pidfile, the lock, the control socket) live in a folder that only root
// (or, for a daemon started by an ordinary user, only that user) can
// write, reached through folders nobody else can change. Root opens them
// with openat on that folder's descriptor and O_NOFOLLOW, so a link planted
// anywhere cannot redirect a write. The log folder belongs to the daemon's
// user, who opens the log after the privilege drop; root never opens a
// path inside it.

// ErrUntrusted is wrapped by the errors of a folder that another user
// could change under root's feet.
var ErrUntrusted = errors.New("others could change it")

// MaxLinks bounds the symbolic links followed while resolving a path.
const MaxLinks = 40

// Trusted reports whether uid may own what root relies on: root, or the
// user this process runs as (a daemon started by an ordinary user).
func Trusted(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// IsRoot trusts root alone: for a daemon root started, which runs as
// daemon.user now and must not take that user's word (its files) for
// root's.
func IsRoot(uid uint32) bool { return uid == 0 }

// Untrusted returns the error for path, with why.
func Untrusted(path, why string) error {
	return fmt.Errorf("%s: %w: %s", path, ErrUntrusted, why)
}

// checkFolder checks one resolved folder: owned by a trusted user and, when
// final, writable by nobody else; an ancestor may be world-writable only
// with the sticky bit (/tmp), where others cannot rename what is not
// theirs.
func checkFolder(path string, st *unix.Stat_t, final bool) error {
	return checkFolderBy(path, st, final, Trusted)
}

// checkFolderBy is checkFolder with owners deciding whose folders are
// trusted.
func checkFolderBy(path string, st *unix.Stat_t, final bool, owners func(uint32) bool) error {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s: not a folder", path)
	}
	if !owners(st.Uid) {
		return Untrusted(path, fmt.Sprintf("owned by uid %d, not root", st.Uid))
	}
	writable := st.Mode&0o022 != 0
	switch {
	case final && writable:
		return Untrusted(path, fmt.Sprintf("mode %04o lets group or others create and replace files in it", st.Mode&0o7777))
	case writable && st.Mode&unix.S_ISVTX == 0:
		return Untrusted(path, fmt.Sprintf("mode %04o lets group or others replace what is inside", st.Mode&0o7777))
	}
	return nil
}

// ResolveTrusted resolves dir (absolute) component by component, following
// only links owned by a trusted user, and checks every folder on the way.
// With mode != 0, missing folders are created with that mode (their parent
// having been checked). It returns the resolved path.
func ResolveTrusted(dir string, mode os.FileMode) (string, error) {
	return resolveFolders(dir, mode, true)
}

// resolveFolders is ResolveTrusted; with strict false the final folder
// is held to the ancestors' rule (world-writable only when sticky), for a
// file of root's that nobody else can rename or replace even there.
func resolveFolders(dir string, mode os.FileMode, strict bool) (string, error) {
	return ResolveFoldersBy(dir, mode, strict, Trusted)
}

// ResolveFoldersBy is resolveFolders with owners deciding whose folders
// and links are trusted.
func ResolveFoldersBy(dir string, mode os.FileMode, strict bool, owners func(uint32) bool) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%s: not an absolute path", dir)
	}
	links := 0
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(filepath.Clean(dir), "/"), "/")
	for {
		var st unix.Stat_t
		if err := unix.Lstat(cur, &st); err != nil {
			return "", fmt.Errorf("%s: %w", cur, err)
		}
		if err := checkFolderBy(cur, &st, strict && (len(rest) == 0 || rest[0] == ""), owners); err != nil {
			return "", err
		}
		if len(rest) == 0 || rest[0] == "" {
			return cur, nil
		}
		name := rest[0]
		rest = rest[1:]
		if name == "." {
			continue
		}
		if name == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		err := unix.Lstat(next, &st)
		if errors.Is(err, unix.ENOENT) && mode != 0 {
			if err := unix.Mkdir(next, uint32(mode.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
				return "", fmt.Errorf("create %s: %w", next, err)
			}
			// mkdir applies the umask: set the mode asked for.
			if err := unix.Fchmodat(unix.AT_FDCWD, next, uint32(mode.Perm()), 0); err != nil {
				return "", fmt.Errorf("chmod %s: %w", next, err)
			}
			err = unix.Lstat(next, &st)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", next, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if !owners(st.Uid) {
				return "", Untrusted(next, fmt.Sprintf("a symbolic link owned by uid %d", st.Uid))
			}
			if links++; links > MaxLinks {
				return "", fmt.Errorf("%s: too many symbolic links", dir)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			parts := strings.Split(strings.TrimPrefix(filepath.Clean(target), "/"), "/")
			rest = append(parts, rest...)
			cur = "/"
			continue
		}
		cur = next
	}
}

// Dir is an open folder that was checked: files in it are created
// and opened relative to its descriptor, never through a link.
type Dir struct {
	path string
	f    *os.File
}

// OpenDir resolves and checks dir (creating missing folders with
// mode when mode != 0), opens it and checks the open folder again, so
// what is opened is what was checked. The caller closes it.
func OpenDir(dir string, mode os.FileMode) (*Dir, error) {
	resolved, err := ResolveTrusted(dir, mode)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(resolved, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", resolved, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := checkFolder(resolved, &st, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Dir{path: resolved, f: os.NewFile(uintptr(fd), resolved)}, nil
}

// Open opens name in the folder with O_NOFOLLOW; a file that exists must
// be a regular file with one link, owned by a trusted user.
func (d *Dir) Open(name string, flags int, mode uint32) (*os.File, error) {
	full := filepath.Join(d.path, name)
	fd, err := unix.Openat(int(d.f.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, mode)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, Untrusted(full, "a symbolic link")
		}
		return nil, fmt.Errorf("open %s: %w", full, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = Untrusted(full, "not a regular file")
	case st.Nlink != 1:
		err = Untrusted(full, fmt.Sprintf("%d hard links", st.Nlink))
	case !Trusted(st.Uid):
		err = Untrusted(full, fmt.Sprintf("owned by uid %d", st.Uid))
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Back to blocking: O_NONBLOCK only kept a FIFO from stalling the open.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), full), nil
}

// Fd is the folder's descriptor, for the *at calls (renameat,
// faccessat) of what is done in it.
func (d *Dir) Fd() int { return int(d.f.Fd()) }

// Remove removes name from the folder (not following a link).
func (d *Dir) Remove(name string) error {
	err := unix.Unlinkat(int(d.f.Fd()), name, 0)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", filepath.Join(d.path, name), err)
	}
	return nil
}

func (d *Dir) Close() {
	if d != nil {
		d.f.Close()
	}
}
