package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/fengda-ai/fengda/logging"
	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/faq"
	"github.com/fengda-ai/fengda/tenant"
	"go.uber.org/zap"
)

// embeddedKB holds the demo knowledge bases, used when a configured kb/ path is not on disk.
//
//go:embed kb/*.yaml
var embeddedKB embed.FS

// reloadKBs reloads every tenant's knowledge base and key set file on each signal until
// ctx ends. A file that does not load leaves that tenant's engine or keys as they were,
// and says why. It first reopens the tenant log files, if any, for log rotation.
func reloadKBs(ctx context.Context, signals <-chan os.Signal, tenants *tenant.Registry, engines map[tenant.ID]*faq.Swap,
	files *logging.TenantFiles, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
		}
		if files != nil {
			if err := files.Reopen(); err != nil {
				log.Error("tenant log files not reopened; lines go to the files open before", zap.String("dir", files.Dir()), zap.Error(err))
			} else {
				log.Info("tenant log files reopened", zap.String("dir", files.Dir()))
			}
		}
		log := log.Named("kb")
		for _, t := range tenants.Tenants() {
			f, err := loadFAQ(t)
			if err != nil {
				log.Error("knowledge base not reloaded, the previous one keeps serving",
					zap.String("tenant", t.ID.String()), zap.String("file", t.Engine.KB), zap.Error(err))
				continue
			}
			engines[t.ID].Replace(f)
			log.Info("knowledge base reloaded",
				zap.String("tenant", t.ID.String()), zap.String("file", t.Engine.KB), zap.Int("entries", f.Len()))
		}
		// Key sets of the tenants' identity providers, after a key rotation.
		changed, err := tenants.ReloadKeys()
		for _, id := range changed {
			log.Info("jwks_file reloaded: tokens are checked against the new keys", zap.String("tenant", id.String()))
		}
		if err != nil {
			log.Error("jwks_file not reloaded, the previous keys keep verifying", zap.Error(err))
		}
	}
}

// loadFAQ builds the FAQ engine of one tenant from its knowledge base file.
func loadFAQ(t *tenant.Tenant) (*faq.FAQ, error) {
	data, err := readKB(t.Engine.KB)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: engine.kb: %w", t.ID, err)
	}
	kb, err := nlpclient.ParseKB(data)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: engine.kb %s: %w", t.ID, t.Engine.KB, err)
	}
	if kb.Tenant != "" && kb.Tenant != t.ID.String() {
		return nil, fmt.Errorf("tenant %s: engine.kb %s belongs to tenant %q", t.ID, t.Engine.KB, kb.Tenant)
	}
	f, err := faq.New(kb, faq.Options{MinConfidence: t.Engine.MinConfidence})
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	return f, nil
}

// readKB reads a knowledge base from disk, or the built-in demo copy of kb/*.yaml.
func readKB(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no knowledge base file configured")
	}
	data, err := os.ReadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	if b, embErr := embeddedKB.ReadFile(path); embErr == nil {
		return b, nil
	}
	return nil, err
}
