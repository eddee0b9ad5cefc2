package knowledge

import (
	"testing"

	"go.uber.org/goleak"
)

// Every watcher and every connection a test opens ends with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
