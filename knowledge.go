package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/fengda-ai/fengda/knowledge"
	"github.com/fengda-ai/fengda/logging"
	"github.com/fengda-ai/fengda/metrics"
	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/faq"
	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/tenant"
	"go.uber.org/zap"
)

// embeddedKB holds the demo knowledge bases, used when a configured kb/ path is not on disk.
//
//go:embed kb/*.yaml
var embeddedKB embed.FS

// reloadOnSignal, on each signal until ctx ends, reopens the tenant log files, if any
// (log rotation), and reloads the tenants' key set files. It reads no knowledge-base
// file: a base is seeded from its file once, then edited through /v1/admin/kb.
func reloadOnSignal(ctx context.Context, signals <-chan os.Signal, tenants *tenant.Registry,
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
		log.Info("reload signal: knowledge-base files are not read again; the live bases are edited through /v1/admin/kb")
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

// buildKnowledge opens the tenants' live knowledge bases, seeding each from its
// engine.kb file the first time, and returns them with each tenant's FAQ engine built
// from its newest version. They live in JetStream buckets of the queue's server, shared
// by every replica; with queue.mode off, in this process only.
func buildKnowledge(ctx context.Context, cfg knowledge.Config, q *queue.Queue, tenants *tenant.Registry,
	figures *metrics.Metrics, log *zap.Logger) (*knowledge.Service, map[tenant.ID]*faq.Swap, error) {
	cfg.Defaults()
	var store knowledge.Store
	if q != nil {
		js, replicas := q.JetStream()
		s, err := knowledge.NewJetStreamStore(js, q.Stream(), replicas, cfg.Versions)
		if err != nil {
			return nil, nil, err
		}
		store = s
	} else {
		s, err := knowledge.NewMemoryStore(cfg.Versions)
		if err != nil {
			return nil, nil, err
		}
		store = s
		log.Warn("queue.mode is off: knowledge-base edits are kept in this process only, lost on a restart and not seen by other replicas")
	}
	swaps := make(map[tenant.ID]*faq.Swap, len(tenants.Tenants()))
	ids := make([]tenant.ID, 0, len(tenants.Tenants()))
	for _, t := range tenants.Tenants() {
		swaps[t.ID] = faq.NewSwap(nil) // served once Open has built it
		ids = append(ids, t.ID)
	}
	serve := func(id tenant.ID, b *knowledge.Base) error {
		t, err := tenants.Get(id)
		if err != nil {
			return err
		}
		f, err := faq.New(b.KB(id.String()), faq.Options{MinConfidence: t.Engine.MinConfidence})
		if err != nil {
			return err
		}
		swaps[id].Replace(f)
		return nil
	}
	seed := func(id tenant.ID) (*knowledge.Base, string, error) {
		t, err := tenants.Get(id)
		if err != nil {
			return nil, "", err
		}
		kb, err := parseKBFile(t)
		if err != nil {
			return nil, "", err
		}
		return baseOf(kb), t.Engine.KB, nil
	}
	kb, err := knowledge.New(cfg, knowledge.Deps{Store: store, Seed: seed, Serve: serve, Observer: figures, Log: log}, ids...)
	if err != nil {
		return nil, nil, err
	}
	if err := kb.Open(ctx); err != nil {
		return nil, nil, err
	}
	return kb, swaps, nil
}

// baseOf is a knowledge base file as a live base.
func baseOf(kb *nlpclient.KB) *knowledge.Base {
	b := &knowledge.Base{Language: kb.Language, Synonyms: kb.Synonyms, Entries: make([]knowledge.Entry, len(kb.Entries))}
	for i, e := range kb.Entries {
		b.Entries[i] = knowledge.Entry{ID: e.ID, Question: e.Question, Alternates: e.Alternates, Answer: e.Answer, Tags: e.Tags}
	}
	return b
}

// loadFAQ builds the FAQ engine of one tenant from its knowledge base file.
func loadFAQ(t *tenant.Tenant) (*faq.FAQ, error) {
	kb, err := parseKBFile(t)
	if err != nil {
		return nil, err
	}
	f, err := faq.New(kb, faq.Options{MinConfidence: t.Engine.MinConfidence})
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	return f, nil
}

// parseKBFile reads and checks tenant t's engine.kb file.
func parseKBFile(t *tenant.Tenant) (*nlpclient.KB, error) {
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
	return kb, nil
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
