package jsonw

import (
	"encoding/json"
	"math"
	"testing"
)

var samples = []string{
	"", "plain", "我的订单在哪里?", "emoji 🙂 and ✓", `quote " backslash \ slash /`,
	"<script>alert('x')</script> & more", "line\u2028para\u2029end", "ctl \x00\x01\x1f\x7f \b\f\n\r\t",
	"bad \xff utf8 \xe4\xbd", "\xed\xa0\x80 surrogate half", "mixed 中文 <b> \xc3",
}

func TestAppendStringIsMarshal(t *testing.T) {
	for _, s := range samples {
		checkString(t, s)
	}
}

func TestAppendFloatIsMarshal(t *testing.T) {
	for _, f := range []float64{0, -0.0, 1, -1, 0.875, 0.1, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, -1e21, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := AppendFloat(nil, f)
		if !ok || string(got) != string(want) {
			t.Errorf("AppendFloat(%v) = %s, %v; json.Marshal writes %s", f, got, ok, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got, ok := AppendFloat([]byte("x"), f); ok || string(got) != "x" {
			t.Errorf("AppendFloat(%v) = %q, %v; want nothing appended, false", f, got, ok)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(checkString)
}

func checkString(t *testing.T, s string) {
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
		t.Errorf("AppendString(%q) = %s, json.Marshal writes %s", s, got[len("prefix"):], want)
	}
}
