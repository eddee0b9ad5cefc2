package handoff

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Bus carries live events between the replicas: a NATS connection's core subjects
// (queue.Queue), or with the queue off, LocalBus in this process. Delivery is at most
// once: what a stream must not miss is also in the session store, which a stream
// reads back when it sees a gap.
type Bus interface {
	Publish(subject string, data []byte) error
	// Subscribe calls fn with every message published on subject until unsubscribe.
	Subscribe(subject string, fn func(data []byte)) (unsubscribe func(), err error)
}

// Names of events.
const (
	eventMessage      = "message"
	eventHandoff      = "handoff"
	eventConversation = "conversation"
)

// Subjects, below the bus's own prefix. Both start with the verified tenant's id, which
// is a valid subject token ([a-z0-9-]), as is a session id ([A-Za-z0-9_-]).
func sessionSubject(t tenant.ID, sessionID string) string {
	return string(t) + ".session." + sessionID
}

func agentsSubject(t tenant.ID) string { return string(t) + ".agents" }

// Event is one live event of a stream: Name is the SSE event name, Data its JSON, and
// ID, for a session's events, its sequence number (0 for the status a stream starts
// with, which has no id).
type Event struct {
	ID   int64
	Name string
	Data json.RawMessage
}

// envelope is an event as the store keeps it and the bus carries it.
type envelope struct {
	Seq   int64           `json:"seq,omitempty"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// sessionEvent stores an event of a session, for a stream that reconnects, and
// publishes it to the streams open on any replica.
func (d *Desk) sessionEvent(ctx context.Context, t tenant.ID, sessionID, name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		d.log.Error("handoff: event not encoded", zap.Error(err))
		return
	}
	stored, _ := json.Marshal(envelope{Event: name, Data: data})
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	seq, err := d.store.AppendEvent(sctx, t, sessionID, stored)
	if err != nil {
		d.log.Warn("handoff: session event not stored; a reconnecting stream will not see it",
			zap.String("tenant", t.String()), zap.String("session", sessionID), zap.Error(err))
	}
	wire, _ := json.Marshal(envelope{Seq: seq, Event: name, Data: data})
	if err := d.bus.Publish(sessionSubject(t, sessionID), wire); err != nil {
		d.log.Warn("handoff: session event not published", zap.String("tenant", t.String()), zap.Error(err))
	}
}

// agentEvent publishes an event to the agents' streams of tenant t.
func (d *Desk) agentEvent(t tenant.ID, name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		d.log.Error("handoff: event not encoded", zap.Error(err))
		return
	}
	wire, _ := json.Marshal(envelope{Event: name, Data: data})
	if err := d.bus.Publish(agentsSubject(t), wire); err != nil {
		d.log.Warn("handoff: agents event not published", zap.String("tenant", t.String()), zap.Error(err))
	}
}

// streamBuffer is how many live events a stream holds for a slow reader; past it the
// stream reads the missed events back from the store (sessions) or drops them
// (agents, whose console reloads its lists on reconnect).
const streamBuffer = 64

// SessionEvents streams the events of ref's session after event id after (0: from
// now), starting with the session's current status, until ctx ends. The session must
// be ref.User's (ErrNotFound). Events are delivered in order, each once: a live event
// that arrives after a gap makes the stream read the gap back from the store first.
func (d *Desk) SessionEvents(ctx context.Context, ref ref, after int64) (<-chan Event, error) {
	if _, err := d.store.LoadRecent(ctx, ref, 0, "", ""); err != nil {
		return nil, err
	}
	last := after
	if after == 0 {
		// From now: the events stored already are history. The newest is read before
		// subscribing, and what follows it read back once subscribed, so that an event
		// stored in between is not lost.
		evs, err := d.store.EventsAfter(ctx, ref.Tenant, ref.Session, 0)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			last = evs[len(evs)-1].Seq
		}
	}
	live := make(chan envelope, streamBuffer)
	overflow := make(chan struct{}, 1)
	unsub, err := d.bus.Subscribe(sessionSubject(ref.Tenant, ref.Session), func(data []byte) {
		var e envelope
		if json.Unmarshal(data, &e) != nil {
			return
		}
		select {
		case live <- e:
		default:
			select {
			case overflow <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	st, err := d.status(ctx, ref.Tenant, ref.Session)
	if err != nil {
		unsub()
		return nil, err
	}
	out := make(chan Event, streamBuffer)
	go func() {
		defer close(out)
		defer unsub()
		data, _ := json.Marshal(st)
		if !send(ctx, out, Event{Name: eventHandoff, Data: data}) {
			return
		}
		replay := func() bool {
			evs, err := d.store.EventsAfter(ctx, ref.Tenant, ref.Session, last)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("handoff: events not read back", zap.String("tenant", ref.Tenant.String()), zap.Error(err))
				}
				return ctx.Err() == nil
			}
			for _, ev := range evs {
				var e envelope
				if json.Unmarshal(ev.Data, &e) != nil {
					continue
				}
				if !send(ctx, out, Event{ID: ev.Seq, Name: e.Event, Data: e.Data}) {
					return false
				}
				last = ev.Seq
			}
			return true
		}
		if !replay() {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-overflow:
				if !replay() {
					return
				}
			case e := <-live:
				switch {
				case e.Seq == 0: // not stored: deliver as it is
					if !send(ctx, out, Event{Name: e.Event, Data: e.Data}) {
						return
					}
				case e.Seq <= last: // read back already
				case e.Seq == last+1:
					if !send(ctx, out, Event{ID: e.Seq, Name: e.Event, Data: e.Data}) {
						return
					}
					last = e.Seq
				default: // a gap: another replica's event is on its way, or was lost
					if !replay() {
						return
					}
				}
			}
		}
	}()
	return out, nil
}

// ref is session.Ref, short for this file's signatures.
type ref = session.Ref

func send(ctx context.Context, out chan<- Event, e Event) bool {
	select {
	case out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

// presenceTTL is how long an agent counts as online after its events stream was last
// seen; the stream refreshes it every presenceTTL/3.
const presenceTTL = 45 * time.Second

// AgentEvents streams tenant events to an agent's console until ctx ends: new and
// changed conversations and customers' messages. While it is open the agent counts
// as online for the desk's notices.
func (d *Desk) AgentEvents(ctx context.Context, agent tenant.Principal) (<-chan Event, error) {
	live := make(chan Event, streamBuffer)
	var dropped sync.Once
	unsub, err := d.bus.Subscribe(agentsSubject(agent.Tenant), func(data []byte) {
		var e envelope
		if json.Unmarshal(data, &e) != nil {
			return
		}
		select {
		case live <- Event{Name: e.Event, Data: e.Data}:
		default:
			dropped.Do(func() {
				d.log.Warn("handoff: agent stream too slow, events dropped", zap.String("tenant", agent.Tenant.String()))
			})
		}
	})
	if err != nil {
		return nil, err
	}
	d.seeAgent(ctx, agent)
	out := make(chan Event, streamBuffer)
	go func() {
		defer close(out)
		defer unsub()
		tick := time.NewTicker(presenceTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				d.seeAgent(ctx, agent)
			case e := <-live:
				if !send(ctx, out, e) {
					return
				}
			}
		}
	}()
	return out, nil
}

func (d *Desk) seeAgent(ctx context.Context, agent tenant.Principal) {
	if err := d.store.SeeAgent(ctx, agent.Tenant, agent.User, d.now().Add(presenceTTL)); err != nil && ctx.Err() == nil {
		d.log.Warn("handoff: agent presence not recorded", zap.String("tenant", agent.Tenant.String()), zap.Error(err))
	}
}

// LocalBus is a Bus within one process.
type LocalBus struct {
	mu   sync.RWMutex
	next int
	subs map[string]map[int]func([]byte)
}

// NewLocalBus returns an empty LocalBus.
func NewLocalBus() *LocalBus { return &LocalBus{subs: make(map[string]map[int]func([]byte))} }

// Publish calls every subscriber of subject.
func (b *LocalBus) Publish(subject string, data []byte) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, fn := range b.subs[subject] {
		fn(data)
	}
	return nil
}

// Subscribe adds fn to subject's subscribers.
func (b *LocalBus) Subscribe(subject string, fn func([]byte)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	id := b.next
	if b.subs[subject] == nil {
		b.subs[subject] = make(map[int]func([]byte))
	}
	b.subs[subject][id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs[subject], id)
		if len(b.subs[subject]) == 0 {
			delete(b.subs, subject)
		}
	}, nil
}
