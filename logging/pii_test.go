package logging

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
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
		{"resident ID", "身份证 110101199003071233", "身份证 11**************33"},
		{"resident ID with X", "ID 11010119900307109X.", "ID 11**************9X."},
		{"resident ID with lower-case x", "11010119900307109x", "11**************9X"},
		{"full-width resident ID with full-width x", "１１０１０１１９９００３０７１０９ｘ", "11**************9X"},
		{"resident ID grouped", "440304 19851230 0016", "44**************16"},
		{"resident ID born on 29 February", "110101200002290026", "11**************26"},
		{"18 digits, wrong check digit: masked as a long number", "110101199003071234", "1101**********1234"},
		{"17 digits and X, wrong check character: the digits masked", "11010119900307123X", "1101*********7123X"},
		{"old resident ID", "旧身份证 110101900307123 号", "旧身份证 11***********23 号"},
		{"mobile", "call 13812345678", "call 138****5678"},
		{"mobile +86", "tel:+8613812345678", "tel:+86138****5678"},
		{"mobile +86 spaced", "+86 138 1234 5678", "+86138****5678"},
		{"mobile 0086 dashed", "0086-138-1234-5678", "0086138****5678"},
		{"mobile 0086 then ungrouped", "0086 13812345678", "0086138****5678"},
		{"mobile dashed", "138-1234-5678", "138****5678"},
		{"mobile spaced dashes", "138 - 1234 - 5678", "138****5678"},
		{"mobile in Chinese text", "我的手机号是13812345678,谢谢", "我的手机号是138****5678,谢谢"},
		{"full-width mobile", "手机１３８１２３４５６７８。", "手机138****5678。"},
		{"full-width mobile with full-width dash", "１３８－１２３４－５６７８", "138****5678"},
		{"mobile with ideographic spaces", "１３８\u3000１２３４\u3000５６７８", "138****5678"},
		{"card", "卡号6222021234567890128", "卡号6222***********0128"},
		{"card grouped by spaces", "card 6222 0212 3456 7890 128 ok", "card 6222***********0128 ok"},
		{"card grouped by dashes", "4111-1111-1111-1111", "4111********1111"},
		{"full-width card", "６２２２０２１２３４５６７８９４", "6222********7894"},
		{"card with ideographic spaces", "６２２２\u3000０２１２\u3000３４５６\u3000７８９４", "6222********7894"},
		{"card then mobile", "卡 6222-0212-3456-7894 13812345678", "卡 6222********7894 *******5678"},
		{"two mobiles spaced", "13812345678 13912345678", "138****5678 *******5678"},
		{"a short number before a mobile", "订单 2024 13812345678", "订单 2024 *******5678"},
		{"a mobile before a short number", "13812345678 2024", "138******** 2024"},
		{"long number, not a card, then a mobile", "1234 5678 9012 3456 138 1234 5678", "1234********3456 *******5678"},
		{"13-digit number", "运单号 1234567890123", "运单号 1234*****0123"},
		{"e-mail", "write to zhang.san+cs@bank-a.com.cn now", "write to ***@bank-a.com.cn now"},
		{"e-mail of digits", "QQ邮箱 12345678901@qq.com", "QQ邮箱 ***@qq.com"},
		{"full-width e-mail", "邮箱ｚｈａｎｇ＠ｂａｎｋ．ｃｎ", "邮箱***＠ｂａｎｋ．ｃｎ"},
		{"mixed", "张三 13812345678 身份证110101199003071233 卡6222021234567894", "张三 138****5678 身份证11**************33 卡6222********7894"},
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
			if leaks := readableNumbers(got); len(leaks) > 0 {
				t.Errorf("Redact(%q) = %q: %q can be read in it", tt.in, got, leaks)
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
		"11010119900307109X",
		"６２２２\u3000０２１２\u3000３４５６\u3000７８９４",
		"13812345678 1234567890",
		"1-2-3-4-5-6-7-8-9-0-1-2-3-4-5-6-7-8-9-0",
		"a.b@c.de 13812345678@qq.com",
		"1234 5678 9012 3456 138 1234 5678",
		"0086 138 1234 5678 6222 0212 3456 7894 440304198512300016",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Redact(s)
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Redact(%q) = %q: not UTF-8", s, got)
		}
		if again := Redact(got); again != got {
			t.Fatalf("Redact is not idempotent: %q -> %q -> %q", s, got, again)
		}
		if leaks := readableNumbers(got); len(leaks) > 0 {
			t.Fatalf("Redact(%q) = %q: %q can be read in it", s, got, leaks)
		}
	})
}

// readableNumbers returns the resident ID, mobile and bank card numbers that can be
// read in s: it reads full-width digits and X as ASCII, removes the separators a number
// may be written with, and checks every run of digits (with an X after it, if any)
// against each kind. It shares no code with the redactor.
func readableNumbers(s string) []string {
	var norm strings.Builder
	for _, r := range s {
		switch {
		case r >= '０' && r <= '９':
			norm.WriteRune(r - '０' + '0')
		case r == 'x' || r == 'Ｘ' || r == 'ｘ':
			norm.WriteByte('X')
		case strings.ContainsRune(" \t-\u00a0\u2007\u2009\u202f\u3000\u2010\u2011\u2012\u2013\u2014\u2212\uff0d", r):
		default:
			norm.WriteRune(r)
		}
	}
	var found []string
	t := norm.String()
	for i := 0; i < len(t); {
		if t[i] < '0' || t[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(t) && t[j] >= '0' && t[j] <= '9' {
			j++
		}
		run := t[i:j]
		if j < len(t) && t[j] == 'X' {
			run += "X"
		}
		if isMobileNumber(run) || isResidentID(run) || isOldResidentID(run) || isCardNumber(run) {
			found = append(found, run)
		}
		i = j
	}
	return found
}

var (
	mobileNumber = regexp.MustCompile(`^(?:0086|86)?1[3-9][0-9]{9}$`)
	residentID18 = regexp.MustCompile(`^[1-9][0-9]{16}[0-9X]$`)
	residentID15 = regexp.MustCompile(`^[1-9][0-9]{5}[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}$`)
)

func isMobileNumber(s string) bool { return mobileNumber.MatchString(s) }

// isResidentID checks the ISO 7064 MOD 11-2 check character only: any 18 digits are
// masked anyway.
func isResidentID(s string) bool {
	if !residentID18.MatchString(s) {
		return false
	}
	return s[17] == isoCheck(s[:17])
}

// isoCheck computes the ISO 7064 MOD 11-2 check character of 17 digits.
func isoCheck(d string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		w := 1
		for range 17 - i {
			w = w * 2 % 11
		}
		sum += int(d[i]-'0') * w
	}
	c := (12 - sum%11) % 11
	if c == 10 {
		return 'X'
	}
	return byte('0' + c)
}

func isOldResidentID(s string) bool { return residentID15.MatchString(s) }

func isCardNumber(s string) bool {
	if len(s) < 16 || len(s) > 19 || strings.Contains(s, "X") {
		return false
	}
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		x := int(s[i] - '0')
		if double {
			if x *= 2; x > 9 {
				x -= 9
			}
		}
		sum += x
		double = !double
	}
	return sum%10 == 0
}

var redactSeed = flag.Uint64("redact.seed", 0, "seed of TestRedactProperty (0: from the clock)")

// TestRedactProperty logs 1,000 generated messages holding valid resident ID, mobile
// and card numbers and e-mail addresses, in every width, grouping and prefix, among
// Chinese and English text, through the redacting core into JSON lines, and checks
// that no such number and no e-mail local part can be read in any line.
func TestRedactProperty(t *testing.T) {
	seed := *redactSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	l, buf := newRedactedLogger(t, zapcore.InfoLevel)
	const cases = 1000
	kinds := map[string]int{}
	for i := range cases {
		msg, secrets := genMessage(rng, kinds)
		buf.Reset()
		l.Info("turn", zap.String("message", msg))
		l.Warn(msg)
		l.Error("failed", zap.Error(errors.New(msg)))
		for _, line := range strings.SplitAfter(buf.String(), "\n") {
			if line == "" {
				continue
			}
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || !json.Valid([]byte(line)) {
				t.Fatalf("seed %d, case %d: %q is not one JSON line", seed, i, line)
			}
			if leaks := readableNumbers(line); len(leaks) > 0 {
				t.Fatalf("seed %d (go test -run TestRedactProperty -redact.seed %d), case %d:\nmessage %q\nline %s\nreadable: %q",
					seed, seed, i, msg, line, leaks)
			}
			flat := strings.ReplaceAll(readable(line), "*", "#")
			for _, s := range secrets {
				if strings.Contains(flat, s) {
					t.Fatalf("seed %d (go test -run TestRedactProperty -redact.seed %d), case %d:\nmessage %q\nline %s\nholds %q",
						seed, seed, i, msg, line, s)
				}
			}
		}
	}
	t.Logf("seed %d: %d messages, numbers generated by kind: %v", seed, cases, kinds)
}

// readable is s with full-width digits and letters read as ASCII and separators removed.
func readable(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '！' && r <= '～': // full-width ASCII
			b.WriteRune(r - '！' + '!')
		case strings.ContainsRune(" \t-\u00a0\u2007\u2009\u202f\u3000\u2010\u2011\u2012\u2013\u2014\u2212\uff0d", r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

var (
	fillerWords = []string{
		"您好", "我的", "手机号是", "身份证号", "卡号", "请帮我查一下", "谢谢", "，", "。", "：", "账户", "转账",
		"信用卡", "还款", "电话", "联系我", "(", ")", "《", "》", "my", "card", "number", "is", "please",
		"call", "ID:", "thanks", ",", ".", "tel:", "or", "订单2024", "共3件", "第1次", "2024年5月1日", "金额1999.00元",
	}
	separators = []string{" ", "-", "\u3000", "－"}
)

// genMessage returns a message of filler text around one to three generated numbers or
// e-mail addresses, sometimes two of them a separator apart, and what must not be
// readable in its log line: each number's digits (and X), each e-mail's local part.
func genMessage(rng *rand.Rand, kinds map[string]int) (string, []string) {
	var b strings.Builder
	var secrets []string
	boundary := func() { // no digit touches a number
		b.WriteString([]string{" ", "：", "是", "，", "\n"}[rng.IntN(5)])
	}
	filler := func() {
		boundary()
		for range rng.IntN(4) {
			b.WriteString(fillerWords[rng.IntN(len(fillerWords))])
			if rng.IntN(2) == 0 {
				b.WriteByte(' ')
			}
		}
		boundary()
	}
	filler()
	for n := 1 + rng.IntN(3); n > 0; n-- {
		kind, digits, text := genNumber(rng)
		kinds[kind]++
		secrets = append(secrets, digits)
		b.WriteString(text)
		if n > 1 && rng.IntN(4) == 0 {
			b.WriteString(separators[rng.IntN(len(separators))]) // the next one right after
			continue
		}
		filler()
	}
	return b.String(), secrets
}

// genNumber returns a valid number of a random kind: its kind, its digits as they can be
// read (ASCII, no separators), and how it is written.
func genNumber(rng *rand.Rand) (kind, digits, text string) {
	switch rng.IntN(5) {
	case 0:
		kind, digits = "resident ID", genResidentID(rng)
		return kind, digits, write(rng, digits, [][]int{nil, {6, 8, 4}, {6, 4, 4, 4}})
	case 1:
		kind, digits = "old resident ID", genOldResidentID(rng)
		return kind, digits, write(rng, digits, [][]int{nil, {6, 6, 3}})
	case 2:
		kind = "mobile"
		m := fmt.Sprintf("1%d%09d", 3+rng.IntN(7), rng.Uint64N(1e9))
		text := write(rng, m, [][]int{nil, {3, 4, 4}})
		prefix := []string{"", "", "+86", "+86 ", "86", "0086", "0086 ", "+86-", "＋８６ ", "００８６－"}[rng.IntN(10)]
		return kind, m, prefix + text
	case 3:
		kind = "card"
		n := 16 + rng.IntN(4)
		digits = genCard(rng, n)
		return kind, digits, write(rng, digits, [][]int{nil, {4, 4, 4, 4, 4}, {6, n - 6}, {4, 4, 4, 4}})
	default:
		kind = "e-mail"
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
		local := make([]byte, 6+rng.IntN(6))
		for i := range local {
			local[i] = letters[rng.IntN(len(letters))]
		}
		domain := []string{"qq.com", "163.com", "bank-a.com.cn", "example.org"}[rng.IntN(4)]
		text := string(local) + "@" + domain
		if rng.IntN(4) == 0 {
			text = fullWidth(text)
		}
		return kind, string(local) + "@", text
	}
}

// write writes digits in one of the groupings (group sizes; nil is none), with a random
// separator, in ASCII, full-width or mixed digits; an X is written x, X, ｘ or Ｘ.
func write(rng *rand.Rand, digits string, groupings [][]int) string {
	grouping := groupings[rng.IntN(len(groupings))]
	sep := []string{" ", "-", "\u3000", "－", " - "}[rng.IntN(5)]
	var b strings.Builder
	pos := 0
	for i, size := range grouping {
		if pos >= len(digits) {
			break
		}
		if i > 0 {
			b.WriteString(sep)
		}
		end := min(pos+size, len(digits))
		if i == len(grouping)-1 {
			end = len(digits)
		}
		b.WriteString(digits[pos:end])
		pos = end
	}
	if grouping == nil {
		b.WriteString(digits)
	}
	s := b.String()
	if strings.HasSuffix(s, "X") {
		s = s[:len(s)-1] + []string{"X", "x", "Ｘ", "ｘ"}[rng.IntN(4)]
	}
	switch rng.IntN(3) {
	case 1:
		return fullWidth(s)
	case 2: // mixed: every other digit full-width
		var m strings.Builder
		for i, r := range s {
			if i%2 == 0 && r >= '0' && r <= '9' {
				r = r - '0' + '０'
			}
			m.WriteRune(r)
		}
		return m.String()
	}
	return s
}

// fullWidth writes the ASCII letters, digits, @ and dots of s in their full-width forms.
func fullWidth(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '@', r == '.':
			r = r - '!' + '！'
		case r == '-':
			r = '－'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func genResidentID(rng *rand.Rand) string {
	region := 110000 + rng.IntN(700000) // 11xxxx..81xxxx
	birth := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(90*365))
	d := fmt.Sprintf("%06d%s%03d", region, birth.Format("20060102"), rng.IntN(1000))
	return d + string(isoCheck(d))
}

func genOldResidentID(rng *rand.Rand) string {
	region := 110000 + rng.IntN(700000)
	birth := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(60*365))
	return fmt.Sprintf("%06d%s%03d", region, birth.Format("060102"), rng.IntN(1000))
}

// genCard returns n digits passing the Luhn check, starting like a UnionPay, Visa or
// Mastercard number.
func genCard(rng *rand.Rand, n int) string {
	prefix := []string{"62", "4", "5", "6222", "9"}[rng.IntN(5)]
	b := []byte(prefix)
	for len(b) < n-1 {
		b = append(b, byte('0'+rng.IntN(10)))
	}
	for c := byte('0'); c <= '9'; c++ {
		if isCardNumber(string(append(b, c))) {
			return string(append(b, c))
		}
	}
	panic("no Luhn check digit")
}
