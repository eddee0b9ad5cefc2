package queue

import (
	"context"
	"strconv"
	"testing"

	"github.com/fengda-ai/fengda/tenant"
)

// BenchmarkPublish measures one publish to the embedded server, acknowledged once
// stored: by default the file store syncs in the background; with sync_always every
// write is flushed to disk first (the bank profile). Compare the two in one run.
func BenchmarkPublish(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run("sync_always="+strconv.FormatBool(sync), func(b *testing.B) {
			cfg := Config{Mode: ModeEmbedded, DataDir: b.TempDir(), SyncAlways: sync, MaxMsgs: 1 << 24, MaxMsgsPerTenant: 1 << 24, MaxBytes: 2 << 30}
			cfg.Defaults()
			q, err := Open(context.Background(), cfg, []tenant.ID{tenantA}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = q.Drain(context.Background()) }()
			data := make([]byte, 512)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := q.Publish(context.Background(), tenantA, "m"+strconv.Itoa(i), data, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAwaitReply measures what a spilled turn's request pays to wait for its
// result: subscribing to the reply subject, the reply and the unsubscribe.
func BenchmarkAwaitReply(b *testing.B) {
	cfg := Config{Mode: ModeEmbedded, DataDir: b.TempDir()}
	cfg.Defaults()
	q, err := Open(context.Background(), cfg, []tenant.ID{tenantA}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = q.Drain(context.Background()) }()
	data := []byte(`{"reply":{"answer":"ok"}}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		key := "k" + strconv.Itoa(i)
		w, err := q.Await(tenantA, key)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Reply(tenantA, key, data); err != nil {
			b.Fatal(err)
		}
		if got, err := w.Wait(context.Background()); err != nil || len(got) != len(data) {
			b.Fatalf("Wait = %q, %v", got, err)
		}
	}
}
