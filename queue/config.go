package queue

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Modes of Config.Mode.
const (
	ModeOff      = "off"
	ModeEmbedded = "embedded"
	ModeExternal = "external"
)

// Config configures the spillover queue. Zero values take the defaults set by Defaults.
type Config struct {
	// Mode is "off" (no spillover), "embedded" (an in-process JetStream server without a
	// port, the default) or "external" (a NATS server or cluster at URL).
	Mode string `yaml:"mode"`
	// URL is the external server, e.g. nats://127.0.0.1:4222; a comma-separated list
	// names the members of a cluster.
	URL string `yaml:"url"`
	// DataDir is the embedded server's JetStream file store, default "./data/jetstream".
	// It survives restarts: queued turns are still there after one.
	DataDir string `yaml:"data_dir"`
	// Stream is the JetStream stream name, default "FENGDA_TURNS".
	Stream string `yaml:"stream"`
	// Subject is the subject prefix, default "fengda.turns": a tenant's turns are
	// published on <Subject>.<tenant>.
	Subject string `yaml:"subject"`
	// MaxMsgs caps the messages in the stream, default 100000. Past it a publish is
	// refused with ErrFull; nothing already queued is dropped.
	MaxMsgs int64 `yaml:"max_msgs"`
	// MaxBytes caps the stream's size, default 256 MiB, refused the same way.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxMsgsPerTenant caps one tenant's queued messages (the stream's
	// MaxMsgsPerSubject), default 20000, so one tenant's burst cannot fill the
	// stream for all. Refused the same way.
	MaxMsgsPerTenant int64 `yaml:"max_msgs_per_tenant"`
	// Replicas is the stream's replication factor, default 1; 3 on a cluster for a bank
	// profile. The embedded server is a single node and takes only 1.
	Replicas int `yaml:"replicas"`
	// SyncAlways makes the embedded server fsync every write (sync_interval: always)
	// instead of every 2 minutes. It costs a disk flush per publish and per ack, and is
	// what a bank profile needs so that an acknowledged publish survives power loss. An
	// external server is governed by its own sync_interval.
	SyncAlways bool `yaml:"sync_always"`
	// Duplicates is the dedupe window for Nats-Msg-Id, default 2m. It must cover the
	// publisher's retry horizon, so it may not be shorter than MaxWait.
	Duplicates time.Duration `yaml:"duplicates"`
	// AckWait is how long a delivered message may go unacknowledged before it is
	// delivered again, default 60s. It must exceed the time a handler may take (the
	// answer deadline plus storing the result): see ValidateDeadline.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxAckPending caps one tenant's delivered but unacknowledged messages across all
	// replicas (it is a property of the shared durable consumer). 0 keeps the server's
	// default (1000). Each replica's own in-flight limit is the capacity given to
	// Consume.
	MaxAckPending int `yaml:"max_ack_pending"`
	// MaxWait is how long a request whose turn was queued waits for its result,
	// default 30s. The queue does not use it itself; callers do.
	MaxWait time.Duration `yaml:"max_wait"`
}

// Defaults fills the zero fields with the documented defaults.
func (c *Config) Defaults() {
	if c.Mode == "" {
		c.Mode = ModeEmbedded
	}
	if c.DataDir == "" {
		c.DataDir = "./data/jetstream"
	}
	if c.Stream == "" {
		c.Stream = "FENGDA_TURNS"
	}
	if c.Subject == "" {
		c.Subject = "fengda.turns"
	}
	if c.MaxMsgs == 0 {
		c.MaxMsgs = 100_000
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 20
	}
	if c.MaxMsgsPerTenant == 0 {
		c.MaxMsgsPerTenant = 20_000
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
	if c.AckWait == 0 {
		c.AckWait = 60 * time.Second
	}
	if c.MaxWait == 0 {
		c.MaxWait = 30 * time.Second
	}
}

// Enabled reports whether spillover is on.
func (c Config) Enabled() bool { return c.Mode != ModeOff }

// Validate checks a configuration that Defaults has filled. Errors name the key. With
// Mode "off" nothing else is checked.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("queue.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Mode {
	case ModeOff:
		return nil
	case ModeEmbedded:
		if c.DataDir == "" {
			bad("data_dir", "required with mode embedded")
		}
		if c.Replicas != 1 {
			bad("replicas", "%d: the embedded server is a single node, use 1 (or mode external for a cluster)", c.Replicas)
		}
	case ModeExternal:
		if strings.TrimSpace(c.URL) == "" {
			bad("url", "required with mode external, e.g. nats://127.0.0.1:4222")
		}
	default:
		bad("mode", "%q is not one of off, embedded, external", c.Mode)
	}
	if !validName(c.Stream) {
		bad("stream", "%q is not a stream name (letters, digits, - and _)", c.Stream)
	}
	if !validSubjectPrefix(c.Subject) {
		bad("subject", "%q is not a subject prefix (dot-separated tokens without wildcards or spaces)", c.Subject)
	}
	if c.MaxMsgs <= 0 {
		bad("max_msgs", "%d: must be positive", c.MaxMsgs)
	}
	if c.MaxBytes <= 0 {
		bad("max_bytes", "%d: must be positive", c.MaxBytes)
	}
	if c.MaxMsgsPerTenant <= 0 || c.MaxMsgsPerTenant > c.MaxMsgs {
		bad("max_msgs_per_tenant", "%d: must be positive and at most max_msgs (%d)", c.MaxMsgsPerTenant, c.MaxMsgs)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("replicas", "%d: must be 1 to 5", c.Replicas)
	}
	if c.MaxWait <= 0 {
		bad("max_wait", "%s: must be positive", c.MaxWait)
	}
	if c.Duplicates < c.MaxWait {
		bad("duplicates", "%s is shorter than queue.max_wait %s: a publish retried while its request still waits could be stored twice", c.Duplicates, c.MaxWait)
	}
	if c.AckWait < time.Second {
		bad("ack_wait", "%s: must be at least 1s", c.AckWait)
	}
	if c.MaxAckPending < 0 {
		bad("max_ack_pending", "%d: must not be negative (0 keeps the server's default)", c.MaxAckPending)
	}
	return errors.Join(errs...)
}

// ValidateDeadline checks that AckWait exceeds answer, the longest a handler may take
// to work one message. Otherwise a message still being worked is delivered again and
// the turn is answered twice. main calls it with the answer deadline, which another
// package configures.
func (c Config) ValidateDeadline(answer time.Duration) error {
	if c.Enabled() && c.AckWait <= answer {
		return fmt.Errorf("queue.ack_wait: %s must exceed the answer deadline %s, or turns still being answered are delivered again", c.AckWait, answer)
	}
	return nil
}

// validName reports whether s can name a stream or a consumer.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// validSubjectPrefix reports whether s is a literal subject of one or more tokens.
func validSubjectPrefix(s string) bool {
	if s == "" {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if !validToken(tok) {
			return false
		}
	}
	return true
}

// validToken reports whether s is one literal subject token.
func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == 0x7f {
			return false
		}
	}
	return true
}
