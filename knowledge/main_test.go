package knowledge

import (
	"testing"

	"go.uber.org/goleak"
)

// Every watcher and every connection a test opens ends with it. nats.go v1.55 leaves
// one goroutine of a JetStream handle that published asynchronously (the object store
// puts chunks so) blocked once its connection is closed: one per handle, not per write.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}
