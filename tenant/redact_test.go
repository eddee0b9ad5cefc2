package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"resident ID", "身份证 110101199003071234", "身份证 11**************34"},
		{"resident ID with X", "ID 11010119900307123X.", "ID 11**************3X."},
		{"resident ID with lower-case x", "11010119900307123x", "11**************3X"},
		{"mobile", "call 13812345678", "call 138****5678"},
		{"mobile +86", "tel:+8613812345678", "tel:+86138****5678"},
		{"mobile +86 spaced", "+86 138 1234 5678", "+86138****5678"},
		{"mobile dashed", "138-1234-5678", "138****5678"},
		{"mobile in Chinese text", "我的手机号是13812345678,谢谢", "我的手机号是138****5678,谢谢"},
		{"full-width mobile", "手机１３８１２３４５６７８。", "手机138****5678。"},
		{"full-width mobile with full-width dash", "１３８－１２３４－５６７８", "138****5678"},
		{"card", "卡号6222021234567890123", "卡号6222***********0123"},
		{"card grouped by spaces", "card 6222 0212 3456 7890 123 ok", "card 6222***********0123 ok"},
		{"card grouped by dashes", "4111-1111-1111-1111", "4111********1111"},
		{"full-width card", "６２２２０２１２３４５６７８９０", "6222********7890"},
		{"card with ideographic spaces", "６２２２\u3000０２１２\u3000３４５６\u3000７８９０", "6222********7890"},
		{"card then mobile", "卡 6222-0212-3456-7890 13812345678", "卡 6222********7890 138****5678"},
		{"two mobiles spaced", "13812345678 13912345678", "138****5678 139****5678"},
		{"e-mail", "write to zhang.san+cs@bank-a.com.cn now", "write to ***@bank-a.com.cn now"},
		{"e-mail of digits", "QQ邮箱 12345678901@qq.com", "QQ邮箱 ***@qq.com"},
		{"mixed", "张三 13812345678 身份证110101199003071234 卡6222021234567890", "张三 138****5678 身份证11**************34 卡6222********7890"},
		{"no PII", "您好,请问信用卡年费怎么收?", "您好,请问信用卡年费怎么收?"},
		{"no PII, English", "How do I reset my password?", "How do I reset my password?"},
		{"short numbers", "订单 2024-05-01 12:30 共 3 件, 金额 1999.00 元", "订单 2024-05-01 12:30 共 3 件, 金额 1999.00 元"},
		{"landline", "010-12345678", "010-12345678"},
		{"12 digits", "123456789012", "123456789012"},
		{"20 digits", "12345678901234567890", "12345678901234567890"},
		{"not a mobile prefix", "12012345678", "12012345678"},
		{"resolution", "1920x1080", "1920x1080"},
		{"at sign alone", "@客服 你好", "@客服 你好"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Redact(tt.in)
			if got != tt.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again := Redact(got); again != got {
				t.Errorf("Redact is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestRedactNoAllocWithoutPII(t *testing.T) {
	s := "您好,请问信用卡年费怎么收? How much is the annual fee?"
	if n := testing.AllocsPerRun(100, func() { Redact(s) }); n != 0 {
		t.Errorf("Redact allocated %v times for text without digits", n)
	}
}

// newRedactedLogger returns a logger writing JSON lines into the returned buffer through
// NewRedactingCore.
func newRedactedLogger(t *testing.T, level zapcore.Level) (*zap.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.AddSync(&buf), level)
	return zap.New(NewRedactingCore(core)), &buf
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

func BenchmarkRedact(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"no digits", "您好,请问信用卡年费怎么收? How much is the annual fee?"},
		{"short numbers", "订单 2024-05-01 共 3 件, 金额 1999 元"},
		{"PII", "张三 13812345678 身份证110101199003071234 卡6222021234567890 zhang@bank.cn"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Redact(bc.in)
			}
		})
	}
}

func FuzzRedact(f *testing.F) {
	for _, seed := range []string{
		"",
		"call 13812345678",
		"+86 138 1234 5678",
		"11010119900307123X",
		"６２２２\u3000０２１２\u3000３４５６\u3000７８９０",
		"13812345678 1234567890",
		"1-2-3-4-5-6-7-8-9-0-1-2-3-4-5-6-7-8-9-0",
		"a.b@c.de 13812345678@qq.com",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Redact(s)
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Redact(%q) = %q: not UTF-8", s, got)
		}
		// No run of digits left would be masked on its own.
		var run []byte
		check := func() {
			if _, masked := classify(run, false, nil); masked {
				t.Fatalf("Redact(%q) = %q: %s left", s, got, run)
			}
			run = run[:0]
		}
		for _, r := range got {
			if d, ok := digit(r); ok {
				run = append(run, d)
				continue
			}
			check()
		}
		check()
	})
}
