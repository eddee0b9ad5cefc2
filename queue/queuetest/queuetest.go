// Package queuetest runs tests against both ways of running JetStream: the embedded
// in-process server and the NATS server on 127.0.0.1:4222. It imports no Fengda package,
// so the queue package's own tests can use it too.
package queuetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ExternalURL is the machine's NATS server.
const ExternalURL = "nats://127.0.0.1:4222"

// Backend is one way of running JetStream.
type Backend struct {
	Name     string
	External bool
}

// Backends are the embedded server and the machine's one.
var Backends = []Backend{{Name: "embedded"}, {Name: "external", External: true}}

// ForEach runs fn as a subtest per backend.
func ForEach(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// Place is where a test's queue lives: queue.mode, and a data directory or a URL with a
// stream and subject prefix of the test's own.
type Place struct {
	Mode    string // "embedded" or "external"
	DataDir string // embedded
	URL     string // external
	Stream  string // external; empty for the default
	Subject string // external; empty for the default
}

// Env returns p as FENGDA_QUEUE_* environment variables.
func (p Place) Env() map[string]string {
	env := map[string]string{"FENGDA_QUEUE_MODE": p.Mode}
	for k, v := range map[string]string{
		"FENGDA_QUEUE_DATA_DIR": p.DataDir, "FENGDA_QUEUE_URL": p.URL,
		"FENGDA_QUEUE_STREAM": p.Stream, "FENGDA_QUEUE_SUBJECT": p.Subject,
	} {
		if v != "" {
			env[k] = v
		}
	}
	return env
}

// Place returns a place private to this test: a temporary data directory, or on the
// shared server a stream and subject prefix of its own, deleted when the test ends.
// Opening a queue there twice reopens the same stream (a restart).
func (b Backend) Place(t *testing.T) Place {
	t.Helper()
	if !b.External {
		return Place{Mode: "embedded", DataDir: t.TempDir()}
	}
	RequireExternal(t)
	suffix := RandomHex(t)
	p := Place{Mode: "external", URL: ExternalURL, Stream: "FDTEST_" + suffix, Subject: "fdtest" + suffix + ".turns"}
	t.Cleanup(func() {
		nc, err := nats.Connect(ExternalURL)
		if err != nil {
			t.Errorf("delete stream %s: %v", p.Stream, err)
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, p.Stream); err != nil {
			t.Errorf("delete stream %s: %v", p.Stream, err)
		}
		// The queue's boards: buckets named after the stream.
		names := js.KeyValueStoreNames(ctx)
		for name := range names.Name() {
			if strings.HasPrefix(name, p.Stream+"_") {
				if err := js.DeleteKeyValue(ctx, name); err != nil {
					t.Errorf("delete board %s: %v", name, err)
				}
			}
		}
		if err := names.Error(); err != nil {
			t.Errorf("list boards of %s: %v", p.Stream, err)
		}
		// Object stores named after the stream (the knowledge bases).
		objects := js.ObjectStoreNames(ctx)
		for name := range objects.Name() {
			if strings.HasPrefix(name, p.Stream+"_") {
				if err := js.DeleteObjectStore(ctx, name); err != nil {
					t.Errorf("delete object store %s: %v", name, err)
				}
			}
		}
		if err := objects.Error(); err != nil {
			t.Errorf("list object stores of %s: %v", p.Stream, err)
		}
	})
	return p
}

// RequireExternal skips the test when the machine's NATS server is down, or fails it
// in CI.
func RequireExternal(t *testing.T) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err == nil {
		conn.Close()
		return
	}
	msg := fmt.Sprintf("NATS is not answering on 127.0.0.1:4222 (%v); start it with `nats-server -js` (or .ci/run)", err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RandomHex returns 12 random hex digits.
func RandomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
