package daemon

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// credential is a user and group to drop to.
type credential struct {
	user, group string
	uid, gid    int
}

// lookupCredential resolves daemon.user and daemon.group ("" for group
// means the user's primary group). It returns nil when user is "".
func lookupCredential(userName, groupName string) (*credential, error) {
	if userName == "" {
		return nil, nil
	}
	u, err := user.Lookup(userName)
	if err != nil {
		return nil, fmt.Errorf("daemon.user %q: no such user", userName)
	}
	c := &credential{user: userName, group: groupName}
	c.uid, _ = strconv.Atoi(u.Uid)
	c.gid, _ = strconv.Atoi(u.Gid)
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return nil, fmt.Errorf("daemon.group %q: no such group", groupName)
		}
		c.gid, _ = strconv.Atoi(g.Gid)
	} else if g, err := user.LookupGroupId(u.Gid); err == nil {
		c.group = g.Name
	}
	return c, nil
}

// drop sets the supplementary groups, the group and the user of the whole
// process (every thread, as Go does on Linux) and checks that root cannot
// be regained.
func (c *credential) drop() error {
	if err := syscall.Setgroups([]int{c.gid}); err != nil {
		return fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setgid(c.gid); err != nil {
		return fmt.Errorf("drop privileges: setgid %d: %w", c.gid, err)
	}
	if err := syscall.Setuid(c.uid); err != nil {
		return fmt.Errorf("drop privileges: setuid %d: %w", c.uid, err)
	}
	if c.uid != 0 && syscall.Setuid(0) == nil {
		return fmt.Errorf("drop privileges: root could be regained")
	}
	return nil
}

// chown gives path to the credential's user, for files and folders the
// daemon must still write after dropping privileges.
func (c *credential) chown(path string) error {
	if err := os.Lchown(path, c.uid, c.gid); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, c.user, err)
	}
	return nil
}
