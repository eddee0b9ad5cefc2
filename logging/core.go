package logging

import (
	"encoding/json"
	"fmt"
	"strconv"

	"go.uber.org/zap/zapcore"
)

// newRedactingCore wraps core so that every entry's message and every string it carries
// goes through Redact: string, byte-string, Stringer and error fields, strings inside
// zap.Object, zap.Array, zap.Strings and zap.Inline values, and fields added by With.
// Integers of 11 or more digits that Redact would mask are logged as masked strings.
// Values logged by reflection (zap.Any of a struct or map) are logged as their redacted
// JSON text. Field keys, the logger name and stack traces are not redacted.
func newRedactingCore(core zapcore.Core) zapcore.Core {
	return &redactingCore{inner: core}
}

// redactingCore overrides With, Check and Write: the inner core's Check would add the
// inner core itself to the entry, bypassing our Write.
type redactingCore struct {
	inner zapcore.Core
}

var _ zapcore.Core = (*redactingCore)(nil)

func (c *redactingCore) Enabled(l zapcore.Level) bool { return c.inner.Enabled(l) }

// Level lets zap see the inner core's level without probing every level.
func (c *redactingCore) Level() zapcore.Level { return zapcore.LevelOf(c.inner) }

func (c *redactingCore) With(fields []zapcore.Field) zapcore.Core {
	return &redactingCore{inner: c.inner.With(redactFields(fields))}
}

func (c *redactingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *redactingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	e.Message = Redact(e.Message)
	return c.inner.Write(e, redactFields(fields))
}

func (c *redactingCore) Sync() error { return c.inner.Sync() }

// redactFields returns fields with their values redacted; it copies fields only when one
// of them changes, so the caller's slice is never modified.
func redactFields(fields []zapcore.Field) []zapcore.Field {
	var out []zapcore.Field
	for i, f := range fields {
		r, changed := redactField(f)
		if !changed {
			if out != nil {
				out = append(out, f)
			}
			continue
		}
		if out == nil {
			out = make([]zapcore.Field, i, len(fields))
			copy(out, fields[:i])
		}
		out = append(out, r)
	}
	if out == nil {
		return fields
	}
	return out
}

// redactField returns f with its value redacted, and whether it differs from f.
func redactField(f zapcore.Field) (zapcore.Field, bool) {
	switch f.Type {
	case zapcore.StringType:
		if r := Redact(f.String); r != f.String {
			f.String = r
			return f, true
		}
	case zapcore.ByteStringType:
		b, _ := f.Interface.([]byte)
		if r := Redact(string(b)); r != string(b) {
			f.Interface = []byte(r)
			return f, true
		}
	case zapcore.Int64Type:
		return redactInteger(f, strconv.FormatInt(f.Integer, 10))
	case zapcore.Uint64Type:
		return redactInteger(f, strconv.FormatUint(uint64(f.Integer), 10))
	case zapcore.StringerType:
		if v, ok := f.Interface.(fmt.Stringer); ok {
			f.Interface = redactedStringer{v}
			return f, true
		}
	case zapcore.ErrorType:
		if err, ok := f.Interface.(error); ok {
			f.Interface = redactedError{err}
			return f, true
		}
	case zapcore.ObjectMarshalerType, zapcore.InlineMarshalerType:
		if v, ok := f.Interface.(zapcore.ObjectMarshaler); ok {
			f.Interface = redactedObject{v}
			return f, true
		}
	case zapcore.ArrayMarshalerType:
		if v, ok := f.Interface.(zapcore.ArrayMarshaler); ok {
			f.Interface = redactedArray{v}
			return f, true
		}
	case zapcore.ReflectType:
		return zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: redactReflected(f.Interface)}, true
	}
	return f, false
}

func redactInteger(f zapcore.Field, s string) (zapcore.Field, bool) {
	if r, ok := maskedInteger(s); ok {
		return zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: r}, true
	}
	return f, false
}

// maskedInteger returns the redaction of the decimal integer s, if it has one. Only
// integers of 11 digits or more can be mobile, card or ID numbers.
func maskedInteger(s string) (string, bool) {
	if len(s) < 11 {
		return "", false
	}
	if r := Redact(s); r != s {
		return r, true
	}
	return "", false
}

// redactReflected renders v as JSON (or with %v when it is not JSON-encodable) and
// redacts the text.
func redactReflected(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return Redact(fmt.Sprintf("%+v", v))
	}
	return Redact(string(b))
}

// redactedStringer defers String to encoding time, as zap does, and redacts the result.
type redactedStringer struct{ s fmt.Stringer }

func (r redactedStringer) String() string { return Redact(r.s.String()) }

// redactedError redacts the message of err. The error's verbose form (stack traces of
// wrapped errors) is dropped: it is not redacted.
type redactedError struct{ err error }

func (r redactedError) Error() string { return Redact(r.err.Error()) }

type redactedObject struct{ m zapcore.ObjectMarshaler }

func (r redactedObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return r.m.MarshalLogObject(redactingObjectEncoder{enc})
}

type redactedArray struct{ m zapcore.ArrayMarshaler }

func (r redactedArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	return r.m.MarshalLogArray(redactingArrayEncoder{enc})
}

// redactingObjectEncoder redacts the strings an ObjectMarshaler adds; every other method
// is the wrapped encoder's.
type redactingObjectEncoder struct{ zapcore.ObjectEncoder }

func (e redactingObjectEncoder) AddString(k, v string) { e.ObjectEncoder.AddString(k, Redact(v)) }

func (e redactingObjectEncoder) AddByteString(k string, v []byte) {
	e.ObjectEncoder.AddByteString(k, []byte(Redact(string(v))))
}

func (e redactingObjectEncoder) AddInt64(k string, v int64) {
	if r, ok := maskedInteger(strconv.FormatInt(v, 10)); ok {
		e.ObjectEncoder.AddString(k, r)
		return
	}
	e.ObjectEncoder.AddInt64(k, v)
}

func (e redactingObjectEncoder) AddInt(k string, v int) { e.AddInt64(k, int64(v)) }

func (e redactingObjectEncoder) AddUint64(k string, v uint64) {
	if r, ok := maskedInteger(strconv.FormatUint(v, 10)); ok {
		e.ObjectEncoder.AddString(k, r)
		return
	}
	e.ObjectEncoder.AddUint64(k, v)
}

func (e redactingObjectEncoder) AddUint(k string, v uint) { e.AddUint64(k, uint64(v)) }

func (e redactingObjectEncoder) AddArray(k string, v zapcore.ArrayMarshaler) error {
	return e.ObjectEncoder.AddArray(k, redactedArray{v})
}

func (e redactingObjectEncoder) AddObject(k string, v zapcore.ObjectMarshaler) error {
	return e.ObjectEncoder.AddObject(k, redactedObject{v})
}

func (e redactingObjectEncoder) AddReflected(k string, v any) error {
	e.ObjectEncoder.AddString(k, redactReflected(v))
	return nil
}

// redactingArrayEncoder is redactingObjectEncoder for arrays.
type redactingArrayEncoder struct{ zapcore.ArrayEncoder }

func (e redactingArrayEncoder) AppendString(v string) { e.ArrayEncoder.AppendString(Redact(v)) }

func (e redactingArrayEncoder) AppendByteString(v []byte) {
	e.ArrayEncoder.AppendByteString([]byte(Redact(string(v))))
}

func (e redactingArrayEncoder) AppendInt64(v int64) {
	if r, ok := maskedInteger(strconv.FormatInt(v, 10)); ok {
		e.ArrayEncoder.AppendString(r)
		return
	}
	e.ArrayEncoder.AppendInt64(v)
}

func (e redactingArrayEncoder) AppendInt(v int) { e.AppendInt64(int64(v)) }

func (e redactingArrayEncoder) AppendUint64(v uint64) {
	if r, ok := maskedInteger(strconv.FormatUint(v, 10)); ok {
		e.ArrayEncoder.AppendString(r)
		return
	}
	e.ArrayEncoder.AppendUint64(v)
}

func (e redactingArrayEncoder) AppendUint(v uint) { e.AppendUint64(uint64(v)) }

func (e redactingArrayEncoder) AppendArray(v zapcore.ArrayMarshaler) error {
	return e.ArrayEncoder.AppendArray(redactedArray{v})
}

func (e redactingArrayEncoder) AppendObject(v zapcore.ObjectMarshaler) error {
	return e.ArrayEncoder.AppendObject(redactedObject{v})
}

func (e redactingArrayEncoder) AppendReflected(v any) error {
	e.ArrayEncoder.AppendString(redactReflected(v))
	return nil
}
