package insights

import (
	"testing"

	"go.uber.org/goleak"
)

// nats.go v1.55 leaves one goroutine of a JetStream handle that published
// asynchronously blocked once its connection is closed: one per handle, not per write
// (see knowledge/main_test.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}
