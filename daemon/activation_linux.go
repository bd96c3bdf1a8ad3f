package daemon

import (
	"os"

	"github.com/coreos/go-systemd/v22/activation"
)

// systemdFiles returns the sockets systemd passed this process
// (LISTEN_FDS, LISTEN_PID, from fd 3), and removes the variables.
func systemdFiles() []*os.File { return activation.Files(true) }
