// Command grab is a test's attacker: running as the daemon's user, it
// watches for new zend processes of its own user and copies their
// descriptors with pidfd_getfd while it can, then reports what it holds.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	skip := map[int]bool{}
	for _, a := range os.Args[2:] {
		if p, err := strconv.Atoi(a); err == nil {
			skip[p] = true
		}
	}
	d, _ := time.ParseDuration(os.Args[1])
	uid := os.Getuid()
	held := map[string]int{}
	for end := time.Now().Add(d); time.Now().Before(end); {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || skip[pid] || pid == os.Getpid() {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name(), &st) != nil || int(st.Uid) != uid {
				continue
			}
			comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			if strings.TrimSpace(string(comm)) != "zend" {
				continue
			}
			pfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			for fd := 3; fd < 32; fd++ {
				if got, err := unix.PidfdGetfd(pfd, fd, 0); err == nil {
					if l, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", got)); err == nil {
						held[l] = got
					}
				}
			}
			unix.Close(pfd)
		}
	}
	for l := range held {
		fmt.Println("held", l)
	}
	fmt.Println("done")
	// Keep what was taken until the test has looked.
	time.Sleep(time.Hour)
}
