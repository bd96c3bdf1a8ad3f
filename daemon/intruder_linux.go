package daemon

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// checkNoIntruder is run by the new daemon of an upgrade once it is
// non-dumpable. From its exec until then it was dumpable (it starts as
// the daemon's user, with no change of credentials to make the kernel
// protect it), so another process of that user could have traced it or
// copied its descriptors (pidfd_getfd): the lock, the pidfile, the
// sockets. After undumpable nobody can; what was done before shows: a
// tracer in TracerPid, or a copy of one of fds open in a process of this
// user. Either makes the upgrade fail (the old daemon keeps serving).
func checkNoIntruder(fds []int, oldPid int) error {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "TracerPid:"); ok && strings.TrimSpace(v) != "0" {
				return fmt.Errorf("upgrade: traced by pid %s while it started: refusing to take over", strings.TrimSpace(v))
			}
		}
	}
	type key struct{ dev, ino uint64 }
	ours := map[key]int{}
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			ours[key{uint64(st.Dev), st.Ino}] = fd
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil // nothing to read: nothing could be taken through /proc either
	}
	me, uid := os.Getpid(), os.Geteuid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == me || pid == oldPid {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil || int(st.Uid) != uid {
			continue
		}
		dir := "/proc/" + e.Name() + "/fd/"
		fdents, err := os.ReadDir(dir)
		if err != nil {
			continue // not dumpable, or gone: it holds nothing it could have taken
		}
		for _, f := range fdents {
			var fst unix.Stat_t
			if unix.Stat(dir+f.Name(), &fst) != nil {
				continue
			}
			if fd, ok := ours[key{uint64(fst.Dev), fst.Ino}]; ok {
				return fmt.Errorf("upgrade: pid %d of this user holds a copy of the daemon's descriptor %d, taken while the new daemon started: refusing to take over", pid, fd)
			}
		}
	}
	return nil
}
