package tenant

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// Redaction masks personal data in text that is about to be logged:
//
//   - mainland resident ID numbers (17 digits and a digit or X): 11**************1X
//   - mobile numbers (1[3-9] and 9 digits, optionally after +86): 138****5678
//   - bank card numbers (13 to 19 digits, grouped by spaces or dashes or not): 6222***********1234
//   - e-mail addresses: the local part becomes ***
//
// Digits may be ASCII or full-width (０-９), and groups may be separated by a space, a
// dash, an ideographic space or a full-width dash. Any other run of 13 to 19 digits is
// masked as a card number too: an order number masked by mistake costs less than a card
// number in a bank's logs. Masks are written with ASCII digits; no run of digits left in
// the result is one that would be masked on its own.

var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})`)

// maxPIIDigits is the most digits any masked number has (a 19-digit card).
const maxPIIDigits = 19

// Redact returns s with resident ID, mobile and bank card numbers and e-mail addresses
// masked. Text without them is returned unchanged; text with fewer than 11 digits and
// no '@' is returned without allocating.
func Redact(s string) string {
	digits, at := scanHints(s)
	if at {
		s = emailPattern.ReplaceAllString(s, "***@$1")
	}
	if digits >= minPIIDigits {
		s = redactNumbers(s)
	}
	return s
}

// minPIIDigits is the fewest digits any masked number has (a mobile number).
const minPIIDigits = 11

// scanHints counts the digits (ASCII or full-width) of s and reports whether it holds an '@'.
func scanHints(s string) (digits int, at bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@':
			at = true
		case c == 0xEF && i+2 < len(s) && s[i+1] == 0xBC && s[i+2] >= 0x90 && s[i+2] <= 0x99:
			digits++ // U+FF10..U+FF19, full-width digits
		}
	}
	return digits, at
}

// digit returns the ASCII digit for r, which may be full-width.
func digit(r rune) (byte, bool) {
	switch {
	case r >= '0' && r <= '9':
		return byte(r), true
	case r >= '０' && r <= '９':
		return byte(r-'０') + '0', true
	}
	return 0, false
}

func isSep(r rune) bool {
	return r == ' ' || r == '-' || r == '\u3000' || r == '－' || r == '\u00a0'
}

func isX(r rune) bool { return r == 'X' || r == 'x' || r == 'Ｘ' || r == 'ｘ' }

// group is a run of digits in the text, ended by a separator (followed by another group),
// by an X, or by anything else.
type group struct {
	from, to  int // the group's ASCII digits are digits[from:to] of redactNumbers
	start     int // byte offset of the first digit
	digitsEnd int // byte offset after the last digit
	end       int // byte offset after the X, if any; else digitsEnd
}

// redactNumbers masks the numbers of s. It looks at each run of digit groups (digits
// separated by single separators) and, from the left, masks the longest sequence of whole
// groups that is a resident ID, mobile or card number; a group that starts none is kept.
func redactNumbers(s string) string {
	var b strings.Builder
	written := 0 // bytes of s already copied to b
	var groupBuf [8]group
	var digitBuf [64]byte
	var maskBuf [maxPIIDigits + 1]byte
	groups, digits := groupBuf[:0], digitBuf[:0]
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if _, ok := digit(r); !ok {
			i += size
			continue
		}
		groups, digits, i = scanRun(s, i, groups[:0], digits[:0])
		for g := 0; g < len(groups); {
			mask, end, n := matchGroups(groups[g:], digits, maskBuf[:0])
			if n == 0 {
				g++
				continue
			}
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[written:groups[g].start])
			b.Write(mask)
			written = end
			g += n
		}
	}
	if b.Len() == 0 { // every mask is non-empty: nothing was masked
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

// scanRun reads the run of digit groups starting at s[i], which is a digit, appending
// the groups and their ASCII digits, and returns the offset after the run.
func scanRun(s string, i int, groups []group, digits []byte) ([]group, []byte, int) {
	for {
		g := group{start: i, from: len(digits)}
		for i < len(s) {
			r, size := utf8.DecodeRuneInString(s[i:])
			d, ok := digit(r)
			if !ok {
				break
			}
			digits = append(digits, d)
			i += size
		}
		g.to = len(digits)
		g.digitsEnd, g.end = i, i
		if i >= len(s) {
			return append(groups, g), digits, i
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if isX(r) {
			g.end = i + size
			return append(groups, g), digits, g.end
		}
		groups = append(groups, g)
		if !isSep(r) || i+size >= len(s) {
			return groups, digits, i
		}
		next, _ := utf8.DecodeRuneInString(s[i+size:])
		if _, ok := digit(next); !ok {
			return groups, digits, i
		}
		i += size
	}
}

// matchGroups finds the longest prefix of groups that is a number to mask, and returns
// the mask (appended to out), the byte offset where the number ends and how many groups
// it spans (0: none).
func matchGroups(groups []group, digits, out []byte) (mask []byte, end, n int) {
	var buf [maxPIIDigits]byte
	total := 0
	last := 0
	for last < len(groups) && total+groups[last].to-groups[last].from <= maxPIIDigits {
		total += groups[last].to - groups[last].from
		last++
	}
	for n := last; n > 0; n-- {
		d := buf[:0]
		for _, g := range groups[:n] {
			d = append(d, digits[g.from:g.to]...)
		}
		g := groups[n-1]
		if g.end > g.digitsEnd {
			if m, ok := classify(d, true, out); ok {
				return m, g.end, n
			}
		}
		if m, ok := classify(d, false, out); ok {
			return m, g.digitsEnd, n
		}
	}
	return nil, 0, 0
}

const stars = "**************************************"

// classify appends to out the mask for d, ASCII digits followed by an X when x is set,
// or returns false when d is none of the numbers masked.
func classify(d []byte, x bool, out []byte) ([]byte, bool) {
	n := len(d)
	switch {
	case x:
		if n == 17 && d[0] != '0' {
			out = append(append(append(out, d[:2]...), stars[:14]...), d[16:]...)
			return append(out, 'X'), true
		}
		return nil, false
	case n == 18 && residentID(d):
		return append(append(append(out, d[:2]...), stars[:14]...), d[16:]...), true
	case n == 11 && mobile(d):
		return append(append(append(out, d[:3]...), stars[:4]...), d[7:]...), true
	case n == 13 && string(d[:2]) == "86" && mobile(d[2:]):
		return append(append(append(out, d[:5]...), stars[:4]...), d[9:]...), true
	case n >= 13 && n <= maxPIIDigits:
		return append(append(append(out, d[:4]...), stars[:n-8]...), d[n-4:]...), true
	}
	return nil, false
}

func mobile(d []byte) bool { return len(d) == 11 && d[0] == '1' && d[1] >= '3' }

// residentID reports whether 18 digits look like a resident ID number: a region code not
// starting with 0 and a plausible birth date.
func residentID(d []byte) bool {
	if d[0] == '0' {
		return false
	}
	century := string(d[6:8])
	month := string(d[10:12])
	day := string(d[12:14])
	return (century == "18" || century == "19" || century == "20") &&
		month >= "01" && month <= "12" && day >= "01" && day <= "31"
}

// NewRedactingCore wraps core so that every entry's message and every string it carries
// goes through Redact: string, byte-string, Stringer and error fields, strings inside
// zap.Object, zap.Array, zap.Strings and zap.Inline values, and fields added by With.
// Integers of 11 or more digits that Redact would mask are logged as masked strings.
// Values logged by reflection (zap.Any of a struct or map) are logged as their redacted
// JSON text. Field keys, the logger name and stack traces are not redacted.
func NewRedactingCore(core zapcore.Core) zapcore.Core {
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
