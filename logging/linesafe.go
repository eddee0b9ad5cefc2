package logging

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// newLineSafeEncoder wraps enc, a JSON encoder, so that each entry is one line whatever
// its strings hold. zap escapes the ASCII controls but writes as they are the C1
// controls (U+0085 breaks a line in some viewers), U+2028 and U+2029, and the
// bidirectional controls, which reorder the text a reader sees. This encoder writes
// them as JSON escapes (\u2028), which mean the same: a message cannot make its line
// look like two, or like another one.
func newLineSafeEncoder(enc zapcore.Encoder) zapcore.Encoder {
	return lineSafeEncoder{enc}
}

type lineSafeEncoder struct{ zapcore.Encoder }

func (e lineSafeEncoder) Clone() zapcore.Encoder { return lineSafeEncoder{e.Encoder.Clone()} }

func (e lineSafeEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	buf, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return buf, err
	}
	b := buf.Bytes()
	i := nextUnsafe(b, 0)
	if i < 0 {
		return buf, nil
	}
	out := linePool.Get()
	last := 0
	for i >= 0 {
		r, size := utf8.DecodeRune(b[i:])
		out.Write(b[last:i])
		out.AppendString(`\u`)
		out.AppendString(fmt.Sprintf("%04x", r))
		last = i + size
		i = nextUnsafe(b, last)
	}
	out.Write(b[last:])
	buf.Free()
	return out, nil
}

var linePool = buffer.NewPool()

// nextUnsafe returns the offset of the next rune from b[i:] on that newLineSafeEncoder
// escapes, or -1. It looks only at the lead bytes those runes can have, found with
// bytes.IndexByte: most lines have none.
func nextUnsafe(b []byte, i int) int {
	for i < len(b) {
		j := -1
		for _, lead := range [...]byte{0xC2, 0xD8, 0xE2} {
			if k := bytes.IndexByte(b[i:], lead); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 {
			return -1
		}
		i += j
		if unsafeRune(b[i:]) {
			return i
		}
		i++
	}
	return -1
}

// unsafeRune reports whether b starts with a C1 control (U+0080–U+009F), U+061C,
// U+200E, U+200F, U+2028–U+202E or U+2066–U+2069.
func unsafeRune(b []byte) bool {
	switch {
	case len(b) >= 2 && b[0] == 0xC2:
		return b[1] >= 0x80 && b[1] <= 0x9F
	case len(b) >= 2 && b[0] == 0xD8:
		return b[1] == 0x9C
	case len(b) >= 3 && b[0] == 0xE2:
		c1, c2 := b[1], b[2]
		return c1 == 0x80 && (c2 == 0x8E || c2 == 0x8F || c2 >= 0xA8 && c2 <= 0xAE) ||
			c1 == 0x81 && c2 >= 0xA6 && c2 <= 0xA9
	}
	return false
}
