package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// exitSecondSignal is the exit status when a second signal cuts the shutdown short.
const exitSecondSignal = 2

// exitSyncWait bounds how long the exit on a second signal waits for the log's last
// lines to be written: a stderr nobody reads must not hold the exit.
const exitSyncWait = time.Second

// runningLog is the logger of the program main runs, for the exit on a second signal,
// which skips runServe's deferred Close: the lines the logger still holds
// (log.flush_interval) are written before it exits.
var runningLog atomic.Pointer[zap.Logger]

// exitOnSecondSignal makes a second SIGTERM or SIGINT end the process at once, without
// waiting for the shutdown the first one started: in-flight requests are cut, and the
// queued turns this process held are delivered again after queue.ack_wait. Its channel
// is registered before the first signal can arrive, so it sees every one.
func exitOnSecondSignal() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		sig := <-sigs
		if log := runningLog.Load(); log != nil {
			synced := make(chan struct{})
			go func() {
				_ = log.Sync()
				close(synced)
			}()
			select {
			case <-synced:
			case <-time.After(exitSyncWait):
			}
		}
		fmt.Fprintf(os.Stderr, "fengda: second signal (%s) during shutdown: exiting at once\n", sig)
		os.Exit(exitSecondSignal)
	}()
}
