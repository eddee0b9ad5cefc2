package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck asks a running server on this machine for GET /healthz and fails
// unless it answers 200 within 3s: fengda healthcheck [-config FILE] [-addr HOST:PORT].
// It is the container image's HEALTHCHECK, which has no curl or shell. The address is
// -addr, else FENGDA_SERVER_ADDR, else server.addr of the configuration.
func runHealthcheck(args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fl.SetOutput(stdout)
	configPath := fl.String("config", "", "config file")
	addr := fl.String("addr", "", "the server's address (default: server.addr)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	a := *addr
	if a == "" {
		a = getenv("FENGDA_SERVER_ADDR")
	}
	if a == "" {
		cfg, _, err := loadConfig(*configPath, getenv)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		a = cfg.Server.Addr
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("healthcheck: address %q: %w", a, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // the server listens on every interface
	}
	u := "http://" + net.JoinHostPort(host, port) + "/healthz"
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: status %d", u, resp.StatusCode)
	}
	_, err = fmt.Fprintf(stdout, "%s", body)
	return err
}
