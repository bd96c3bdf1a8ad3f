package daemon

// sysSigprocmask is __sigprocmask14, as Go's runtime calls it (x/sys/unix
// does not name it).
const sysSigprocmask = 293
