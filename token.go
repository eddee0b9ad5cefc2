package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// runToken prints a token: fengda token -tenant ID -user USER [-role user|agent|admin]
// [-name NAME] [-ttl 1h].
func runToken(args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("token", flag.ContinueOnError)
	fl.SetOutput(stdout)
	configPath := fl.String("config", "", "config file")
	tid := fl.String("tenant", "", "tenant id (required)")
	user := fl.String("user", "", "user id, the token's sub (required)")
	role := fl.String("role", tenant.RoleUser, "the token's role: user, agent or admin")
	name := fl.String("name", "", "display name, shown to customers for an agent (optional)")
	ttl := fl.Duration("ttl", time.Hour, "token lifetime, at most 24h")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *tid == "" || *user == "" {
		return errors.New("token: -tenant and -user are required")
	}
	if !tenant.ValidRole(*role) {
		return fmt.Errorf("token: -role %q: must be %s, %s or %s", *role, tenant.RoleUser, tenant.RoleAgent, tenant.RoleAdmin)
	}
	tenants, id, err := registryFor(*configPath, *tid, getenv)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok, _, err := tenants.MintRole(id, *user, *role, *name, *ttl, time.Now())
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// registryFor loads the configuration and tenants for a command that names one tenant.
func registryFor(configPath, tid string, getenv func(string) string) (*tenant.Registry, tenant.ID, error) {
	id, err := tenant.ParseID(tid)
	if err != nil {
		return nil, "", fmt.Errorf("-tenant: %w", err)
	}
	cfg, _, err := loadConfig(configPath, getenv)
	if err != nil {
		return nil, "", err
	}
	tenants, err := tenant.NewRegistry(cfg.Tenants, getenv)
	if err != nil {
		return nil, "", fmt.Errorf("tenants: %w", err)
	}
	return tenants, id, nil
}
