package main_test

import (
	"os"
	"os/signal"
	"runtime"
)

func runtimeLockOSThread()       { runtime.LockOSThread() }
func signalIgnore(sig os.Signal) { signal.Ignore(sig) }
func signalReset(sig os.Signal)  { signal.Reset(sig) }
