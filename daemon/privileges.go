package daemon

import (
	"fmt"
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

// drop makes the whole process (every thread) the credential's user for
// good: no new privileges can be gained through exec (PR_SET_NO_NEW_PRIVS),
// the capability bounding set is emptied (see lockPrivileges, whose note
// it returns), then the supplementary groups, the group and the user are
// set, and it checks that root cannot be regained. It returns the first
// step that failed.
func (c *credential) drop() (note string, err error) {
	note, err = lockPrivileges()
	if err != nil {
		return "", fmt.Errorf("drop privileges: %w", err)
	}
	if err := syscall.Setgroups([]int{c.gid}); err != nil {
		return "", fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setgid(c.gid); err != nil {
		return "", fmt.Errorf("drop privileges: setgid %d: %w", c.gid, err)
	}
	if err := syscall.Setuid(c.uid); err != nil {
		return "", fmt.Errorf("drop privileges: setuid %d: %w", c.uid, err)
	}
	if c.uid != 0 && syscall.Setuid(0) == nil {
		return "", fmt.Errorf("drop privileges: root could be regained")
	}
	return note, nil
}
