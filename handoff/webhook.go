package handoff

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Webhook event types.
const (
	webhookHandoff = "handoff" // a status change: waiting, agent, closed
	webhookMessage = "message" // a customer's or an agent's message while handed off
)

// Webhook is the body of a webhook POST. event_id is unique per event and the same on
// every retry of it, so that the receiver can drop what it has seen.
type Webhook struct {
	EventID   string        `json:"event_id"`
	Type      string        `json:"type"` // handoff | message
	Tenant    string        `json:"tenant"`
	SessionID string        `json:"session_id"`
	UserID    string        `json:"user_id"`
	At        time.Time     `json:"at"`
	Handoff   *Conversation `json:"handoff,omitempty"`
	Message   *Message      `json:"message,omitempty"`
}

// Signature headers. X-Fengda-Signature is "sha256=" and the hex HMAC-SHA256 of the
// body under the tenant's handoff.webhook_secret.
const (
	HeaderSignature = "X-Fengda-Signature"
	HeaderTimestamp = "X-Fengda-Timestamp"
	HeaderEventID   = "X-Fengda-Event-Id"
)

// Sign returns the X-Fengda-Signature value of body under key.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Webhook delivery: each event is tried up to webhookAttempts times, waiting
// webhookBackoff, then twice as long each time (1 s … 32 s, about a minute in all); a
// 2xx answer delivers it. At most webhookBacklog wait; past it new events are dropped
// and logged.
const (
	webhookAttempts = 7
	webhookBackoff  = time.Second
	webhookBacklog  = 4096
	webhookWorkers  = 4
)

type delivery struct {
	tenant  tenant.ID
	url     string
	key     []byte
	id      string
	body    []byte
	attempt int
}

type webhooks struct {
	client *http.Client
	log    *zap.Logger
	queue  chan delivery
	// backoff is the wait before the second try, doubled for each next one
	// (webhookBackoff; tests shorten it).
	backoff time.Duration
	// wg counts the retries waiting on their timers.
	wg sync.WaitGroup
}

func newWebhooks(client *http.Client, log *zap.Logger) *webhooks {
	return &webhooks{client: client, log: log, queue: make(chan delivery, webhookBacklog), backoff: webhookBackoff}
}

// send queues an event for tn's webhook, if it has one.
func (w *webhooks) send(tn *tenant.Tenant, typ string, h session.Handoff, msg *Message, at time.Time) {
	if tn.Handoff.WebhookURL == "" {
		return
	}
	ev := Webhook{EventID: newEventID(), Type: typ, Tenant: tn.ID.String(), SessionID: h.Session, UserID: h.User, At: at.UTC(), Message: msg}
	if typ == webhookHandoff {
		c := conversationOf(h)
		ev.Handoff = &c
	}
	body, err := json.Marshal(ev)
	if err != nil {
		w.log.Error("handoff webhook not encoded", zap.Error(err))
		return
	}
	d := delivery{tenant: tn.ID, url: tn.Handoff.WebhookURL, key: tn.Handoff.WebhookKey(), id: ev.EventID, body: body}
	select {
	case w.queue <- d:
	default:
		w.log.Warn("handoff webhook backlog full, event dropped", zap.String("tenant", tn.ID.String()), zap.String("event_id", ev.EventID))
	}
}

func (w *webhooks) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range webhookWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-w.queue:
					w.deliver(ctx, d)
				}
			}
		})
	}
	wg.Wait()
	// A last try for what is left, within a few seconds.
	end, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	for {
		select {
		case d := <-w.queue:
			d.attempt = webhookAttempts - 1
			w.deliver(end, d)
		default:
			return
		}
	}
}

// deliver posts d once; on failure it schedules the next try.
func (w *webhooks) deliver(ctx context.Context, d delivery) {
	d.attempt++
	err := w.post(ctx, d)
	if err == nil {
		return
	}
	log := w.log.With(zap.String("tenant", d.tenant.String()), zap.String("event_id", d.id), zap.Int("attempt", d.attempt))
	if d.attempt >= webhookAttempts || ctx.Err() != nil {
		log.Warn("handoff webhook not delivered, giving up", zap.Error(err))
		return
	}
	wait := w.backoff << (d.attempt - 1)
	log.Info("handoff webhook failed, retrying", zap.Duration("in", wait), zap.Error(err))
	time.AfterFunc(wait, func() {
		select {
		case w.queue <- d:
		default:
			log.Warn("handoff webhook backlog full, retry dropped")
		}
	})
}

func (w *webhooks) post(ctx context.Context, d delivery) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fengda-webhook")
	req.Header.Set(HeaderEventID, d.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(d.key, d.body))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// newEventID returns a random event id: 32 hex characters.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
