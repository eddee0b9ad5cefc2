// Command fengda is an AI customer-service backend: one binary that answers the end users
// of many tenants in real time, remembers each conversation and keeps tenants apart.
//
//	fengda [-config FILE]                                 serve (default)
//	fengda token -tenant ID -user USER [-ttl 1h]          print a user token
//	fengda eval -tenant ID -queries FILE [-json]          measure answer quality
//	fengda healthcheck [-config FILE] [-addr HOST:PORT]   GET /healthz of a running server
//	fengda version                                        print the build's version
//
// main only parses flags, loads configuration, builds every module and runs them; the
// logic lives in the packages. One file a command: serve.go (the composition root, in
// the order a request meets the modules), token.go, eval.go, healthcheck.go and
// version.go; beside them config.go (the root configuration), knowledge.go (the
// knowledge bases and their reload) and signal.go (the exit on a second signal). The
// root logger is built by package logging.
//
// Exit status: 0 after a clean shutdown (SIGTERM or SIGINT, see serve), 1 when start-up
// or serving fails, 2 when a second SIGTERM or SIGINT cuts the shutdown short.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	_ "time/tzdata" // handoff.hours time zones on a machine without a zoneinfo database

	"go.uber.org/zap"
)

func main() {
	exitOnSecondSignal()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "fengda:", err)
		os.Exit(1)
	}
}

// run is the whole program, reusable by end-to-end tests. SIGHUP reloads every tenant's
// knowledge base and reopens the tenant log files (log.tenant_dir).
func run(ctx context.Context, args []string, getenv func(string) string) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runWith(ctx, args, process{getenv: getenv, stdout: os.Stdout, reload: hup, exitLog: &runningLog})
}

// process is what the program takes from its surroundings; tests pass their own.
type process struct {
	getenv func(string) string
	stdout io.Writer
	ready  func(net.Addr)   // if set, receives the address the server listens on
	reload <-chan os.Signal // each value reloads every tenant's knowledge base
	logs   io.Writer        // if set, the log is written here instead of stderr
	// exitLog, if set, holds the logger while it is in use, for an exit that skips
	// runServe's deferred Close (main's exit on a second signal).
	exitLog *atomic.Pointer[zap.Logger]
}

// runWith is run with its surroundings given (tests pass server.addr 127.0.0.1:0).
func runWith(ctx context.Context, args []string, p process) error {
	if len(args) > 0 {
		switch args[0] {
		case "token":
			return runToken(args[1:], p.getenv, p.stdout)
		case "eval":
			return runEval(args[1:], p.getenv, p.stdout)
		case "healthcheck":
			return runHealthcheck(args[1:], p.getenv, p.stdout)
		case "version":
			return runVersion(p.stdout)
		case "serve":
			args = args[1:]
		}
	}
	return runServe(ctx, args, p)
}
