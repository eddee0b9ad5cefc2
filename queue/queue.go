// Package queue will own NATS JetStream spillover: an embedded in-process server or an
// external cluster, publishing turns with dedupe, pull consumers that ack after the work
// is stored, and lag metrics. It knows nothing of what a turn means beyond bytes and
// headers.
//
// Nothing uses it yet: until spillover lands, a full dialogue backlog is refused with
// 503 overloaded.
package queue
