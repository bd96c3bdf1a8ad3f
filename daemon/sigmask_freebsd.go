package daemon

import "golang.org/x/sys/unix"

const sysSigprocmask = unix.SYS_SIGPROCMASK
