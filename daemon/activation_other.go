//go:build !linux

package daemon

import "os"

// systemdFiles returns nothing: socket activation is systemd's, and this
// system has no systemd. Sockets handed from stage to stage of "zend
// start" and by an upgrade (_ZEND_LISTEN_FDS) work all the same.
func systemdFiles() []*os.File { return nil }
