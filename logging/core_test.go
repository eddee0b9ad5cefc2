package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newRedactedLogger returns a logger writing JSON lines into the returned buffer through
// newRedactingCore.
func newRedactedLogger(t *testing.T, level zapcore.Level) (*zap.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	enc := newLineSafeEncoder(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()))
	core := zapcore.NewCore(enc, zapcore.AddSync(&buf), level)
	return zap.New(newRedactingCore(core)), &buf
}

type phoneStringer struct{}

func (phoneStringer) String() string { return "stringer 13812345678" }

type contact struct{ phone, card string }

func (c contact) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("phone", c.phone)
	enc.AddInt("phone_number", 13812345678)
	return enc.AddArray("cards", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		a.AppendString(c.card)
		a.AppendInt64(6222021234567890)
		return nil
	}))
}

func TestRedactingCore(t *testing.T) {
	const phone = "13812345678"
	const card = "6222021234567890"
	tests := []struct {
		name string
		log  func(l *zap.Logger)
	}{
		{"message and With", func(l *zap.Logger) {
			l.With(zap.String("q", phone)).Info("call " + phone)
		}},
		{"nested With and Named", func(l *zap.Logger) {
			l.Named("dialogue").With(zap.String("a", phone)).With(zap.ByteString("b", []byte(card))).Warn("x")
		}},
		{"field types", func(l *zap.Logger) {
			l.Info("fields",
				zap.String("s", phone),
				zap.ByteString("bs", []byte(phone)),
				zap.Stringer("st", phoneStringer{}),
				zap.Error(fmt.Errorf("lookup %s: %w", phone, errors.New("not found"))),
				zap.Strings("list", []string{"ok", phone}),
				zap.Int64("i", 13812345678),
				zap.Uint64("u", 6222021234567890),
				zap.Any("map", map[string]any{"phone": phone, "n": 13812345678}),
				zap.Object("obj", contact{phone: phone, card: card}),
				zap.Inline(contact{phone: phone, card: card}),
			)
		}},
		{"Check then Write", func(l *zap.Logger) {
			if ce := l.Check(zap.InfoLevel, "checked "+phone); ce != nil {
				ce.Write(zap.String("q", phone))
			}
		}},
		{"sugared", func(l *zap.Logger) {
			s := l.Sugar()
			s.Infof("call %s", phone)
			s.Infow("call", "phone", phone, "card", card)
			s.With("q", phone).Error("x")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := newRedactedLogger(t, zapcore.InfoLevel)
			tt.log(l)
			got := buf.String()
			if got == "" {
				t.Fatal("nothing was logged")
			}
			for _, secret := range []string{phone, card} {
				if strings.Contains(got, secret) {
					t.Errorf("log holds %s:\n%s", secret, got)
				}
			}
			if !strings.Contains(got, "138****5678") && !strings.Contains(got, "6222********7890") {
				t.Errorf("log holds no mask:\n%s", got)
			}
		})
	}
}

// TestRedactingCoreOneLinePerEntry: whatever a message holds, its entry is one JSON
// line whose text has no line break, line separator or bidirectional control, and
// whose message decodes to the text logged.
func TestRedactingCoreOneLinePerEntry(t *testing.T) {
	forged := `","level":"info","msg":"login ok","tenant":"bank-b"}`
	for _, msg := range []string{
		"a\nb", "a\rb", "a\r\nb", "a\u2028b", "a\u2029b", "a\u0085b", "a\u000bb\u000cc",
		"ok\n" + `{"level":"info","msg":"forged"}`,
		"ok\u2028" + forged,
		"\u202eevil\u202c \u2066x\u2069 \u200e\u200f \u061c",
		"\x80\xff invalid UTF-8",
	} {
		l, buf := newRedactedLogger(t, zapcore.InfoLevel)
		l.Info(msg, zap.String("message", msg), zap.Error(errors.New(msg)))
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("%q: not one line: %q", msg, line)
		}
		for _, r := range line[:len(line)-1] {
			if r < 0x20 || r >= 0x80 && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == 0x200e || r == 0x200f ||
				r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x061c {
				t.Errorf("%q: the line holds %U: %q", msg, r, line)
			}
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("%q: %v: %q", msg, err, line)
		}
		want := []rune(msg) // each invalid byte decodes as U+FFFD, as zap writes it
		if w := string(want); entry["msg"] != w || entry["message"] != w || entry["error"] != w {
			t.Errorf("%q: decoded %q, %q, %q", msg, entry["msg"], entry["message"], entry["error"])
		}
		if entry["tenant"] != nil {
			t.Errorf("%q: a forged field was decoded: %v", msg, entry)
		}
	}
}

func TestRedactingCoreKeepsOtherFields(t *testing.T) {
	l, buf := newRedactedLogger(t, zapcore.InfoLevel)
	l.Info("turn", zap.String("tenant", "bank-a"), zap.Int("turns", 42), zap.Int64("latency_us", 1234))
	const want = `"msg":"turn","tenant":"bank-a","turns":42,"latency_us":1234}`
	if got := buf.String(); !strings.Contains(got, want) {
		t.Errorf("log = %s\nwant it to contain %s", got, want)
	}
}

func TestRedactingCoreLevel(t *testing.T) {
	l, buf := newRedactedLogger(t, zapcore.InfoLevel)
	l.Debug("debug 13812345678")
	if got := buf.String(); got != "" {
		t.Errorf("a debug entry was written at info level: %s", got)
	}
	if got, want := zapcore.LevelOf(l.Core()), zapcore.InfoLevel; got != want {
		t.Errorf("LevelOf = %v, want %v", got, want)
	}
}

// BenchmarkLogLine is an access line through the redacting core, with zap's JSON
// encoder and with the line-safe one.
func BenchmarkLogLine(b *testing.B) {
	for _, bc := range []struct {
		name string
		enc  func() zapcore.Encoder
	}{
		{"json", func() zapcore.Encoder { return zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()) }},
		{"line-safe json", func() zapcore.Encoder {
			return newLineSafeEncoder(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := zap.New(newRedactingCore(zapcore.NewCore(bc.enc(), zapcore.AddSync(io.Discard), zapcore.InfoLevel)))
			b.ReportAllocs()
			for b.Loop() {
				l.Info("request", zap.String("request_id", "Q7ZB4KX2M3N5P6R7"), zap.String("method", "POST"),
					zap.String("route", "/v1/chat"), zap.Int("status", 200), zap.String("tenant", "qinghe-bank"),
					zap.Duration("latency", 1234567))
			}
		})
	}
}

// FuzzRedactingCore logs arbitrary text through the redacting core and the line-safe
// JSON encoder: the entry is one line of JSON without a raw line separator or
// bidirectional control, and no resident ID, mobile or card number can be read in the
// text it decodes to.
func FuzzRedactingCore(f *testing.F) {
	for _, seed := range []string{
		"call 13812345678",
		"ok\n{\"level\":\"info\",\"msg\":\"forged\"}",
		"a\u2028b\u0085c\u202ed",
		"１３８\u3000１２３４\u3000５６７８",
		"\x80\xff 6222 0212 3456 7894",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, buf := newRedactedLogger(t, zapcore.InfoLevel)
		l.Info(s, zap.String("message", s))
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("%q: not one line: %q", s, line)
		}
		if i := nextUnsafe([]byte(line), 0); i >= 0 {
			t.Fatalf("%q: the line holds an unescaped separator or control at %d: %q", s, i, line)
		}
		var entry struct{ Msg, Message string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("%q: %v: %q", s, err, line)
		}
		for _, v := range []string{entry.Msg, entry.Message} {
			if leaks := readableNumbers(v); len(leaks) > 0 {
				t.Fatalf("%q logged as %q: %q can be read in it", s, v, leaks)
			}
		}
	})
}
