package dialogue_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// idRecorder is an echo that records the request id each message was answered with,
// and fails the messages starting with "fail".
type idRecorder struct {
	*echo
	mu  sync.Mutex
	ids map[string]string // message → the request id it was asked with
}

func (r *idRecorder) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	r.mu.Lock()
	r.ids[req.Message] = req.RequestID
	r.mu.Unlock()
	if strings.HasPrefix(req.Message, "fail") {
		return nlpclient.Answer{}, errors.New("engine down")
	}
	return r.echo.Answer(ctx, req)
}

func (r *idRecorder) idOf(msg string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[msg]
}

// checkTurnLine checks that logs holds the line msg about the turn of request id, with
// the tenant bank and that id, and not the turn's message text.
func checkTurnLine(t *testing.T, logs *observer.ObservedLogs, msg, id, text string) {
	t.Helper()
	lines := logs.FilterMessage(msg).FilterField(zap.String("request_id", id)).All()
	if len(lines) != 1 {
		t.Fatalf("%d lines %q with request_id %s, want 1; all lines: %v", len(lines), msg, id, logs.All())
	}
	fields := lines[0].ContextMap()
	if fields["tenant"] != string(bank) {
		t.Errorf("line %q: tenant %v, want %s", msg, fields["tenant"], bank)
	}
	for k, v := range fields {
		if s, ok := v.(string); ok && strings.Contains(s, text) {
			t.Errorf("line %q: field %s holds the message text: %q", msg, k, s)
		}
	}
}

func TestLogLinesOfATurnCarryTenantAndRequestID(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	store, err := session.NewMemoryStore(session.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := &idRecorder{echo: &echo{}, ids: map[string]string{}}
	e, err := dialogue.New(dialogue.Config{Workers: 1, Backlog: 4}, dialogue.Deps{
		Store:     store,
		Answerers: map[tenant.ID]dialogue.Answerer{bank: a},
		Tenants:   tenants{bank: {ID: bank, FallbackAnswer: "busy"}},
		Log:       zap.New(core),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	for _, tc := range []struct{ id, msg string }{{"req-json", "fail json secret-text"}, {"req-stream", "fail stream secret-text"}} {
		turn := dialogue.Turn{Tenant: bank, User: "u1", Message: tc.msg, RequestID: tc.id}
		if tc.id == "req-stream" {
			ch, err := e.Stream(context.Background(), turn)
			if err != nil {
				t.Fatal(err)
			}
			doneOf(t, ch)
		} else if _, err := e.Submit(context.Background(), turn); err != nil {
			t.Fatal(err)
		}
		if got := a.idOf(tc.msg); got != tc.id {
			t.Errorf("the engine was asked with request id %q, want %q", got, tc.id)
		}
		checkTurnLine(t, logs, "answer engine failed, using fallback", tc.id, "secret-text")
	}
}

func TestQueuedTurnLogLinesCarryTheRequestID(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		core, logs := observer.New(zapcore.WarnLevel)
		a := &idRecorder{echo: &echo{gate: make(chan struct{}), started: make(chan string, 16)}, ids: map[string]string{}}
		arrived := make(chan struct{})
		wrap := func(h queue.Handler) queue.Handler {
			once := sync.OnceFunc(func() { close(arrived) })
			return func(ctx context.Context, m queue.Msg) error {
				once()
				return h(ctx, m)
			}
		}
		rig := startSpillLogged(t, b, dialogue.Config{Workers: 1, Backlog: 1}, queue.Config{},
			dialogue.Spill{Wait: 10 * time.Second}, a, wrap, zap.New(core))
		streams := fill(t, rig.e, a.echo, 1)
		turn := dialogue.Turn{Tenant: bank, User: "u2", Message: "fail queued secret-text", RequestID: "req-queued"}
		replied := make(chan dialogue.Reply, 1)
		go func() {
			r, err := rig.e.Submit(context.Background(), turn)
			if err != nil {
				t.Error(err)
			}
			replied <- r
		}()
		select { // the workers are busy: it went through the queue
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the turn did not reach the queue's consumer")
		}
		close(a.gate)
		for _, ch := range streams {
			doneOf(t, ch)
		}
		r := settle(t, rig.e, turn, <-replied)
		if r.Source != "fallback" {
			t.Errorf("reply %+v, want the fallback", r)
		}
		if rig.count(dialogue.SpillAnswered)+rig.count(dialogue.SpillQueued) != 1 {
			t.Fatalf("the turn was not spilled: outcomes %v", rig.outcomes)
		}
		if got := a.idOf(turn.Message); got != "req-queued" {
			t.Errorf("the queued turn was answered with request id %q, want req-queued", got)
		}
		checkTurnLine(t, logs, "answer engine failed, using fallback", "req-queued", "secret-text")
	})
}
