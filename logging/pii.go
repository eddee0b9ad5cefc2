package logging

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

var emailPattern = regexp.MustCompile(
	`[A-Za-z0-9._%+\-\x{FF0E}\x{FF10}-\x{FF19}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}]+` + // local part
		`([@\x{FF20}][A-Za-z0-9\-\x{FF0D}\x{FF10}-\x{FF19}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}]+` + // @ and first label
		`(?:[.\x{FF0E}][A-Za-z0-9\-\x{FF0D}\x{FF10}-\x{FF19}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}]+)*` + // further labels
		`[.\x{FF0E}][A-Za-z\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}]{2,})`) // top-level domain

const (
	// minPIIDigits is the fewest digits any masked number has (a mobile number).
	minPIIDigits = 11
	// maxPIIDigits is the most digits any masked number has (a 19-digit card).
	maxPIIDigits = 19
	// minAnyDigits is the fewest digits of a sequence masked although it is none of
	// the numbers recognised.
	minAnyDigits = 13
)

// Redact returns s with personal data masked. Text without any is returned unchanged,
// and text with fewer than 11 digits and no @ without allocating.
//
// A number is a run of digits, ASCII or full-width (０-９), in groups split by
// separators (spaces, tabs, dashes, and their full-width and typographic forms). From
// the left of each run, the longest sequence of whole groups, at most 19 digits, that is
// one of these is masked:
//
//   - a resident ID number: 17 digits and their ISO 7064 MOD 11-2 check character (a
//     digit or X), a region code not starting with 0 and a valid birth date:
//     11**************1X; or the old form of 15 digits: 11***********12
//   - a mobile number: 1[3-9] and 9 more digits, alone or after 86 or 0086: 138****5678
//   - a bank card number: 16 to 19 digits passing the Luhn check: 6222********7890
//   - deliberately, any other 13 to 19 digits (an order number masked by mistake costs
//     less than a card number in a bank's logs), never taking in the first group of
//     one of the numbers above
//
// Masks use ASCII digits and X, one character a digit. A mask keeps its first digits
// only when it starts the run, and its last only when no unmasked group follows, so no
// run left in the result is a number that would be masked (FuzzRedact and
// TestRedactProperty check this). In e-mail addresses, ASCII or full-width, the local
// part becomes ***.
func Redact(s string) string {
	digits, at := scanHints(s)
	if at {
		s = redactEmails(s)
	}
	if digits >= minPIIDigits {
		s = redactNumbers(s)
	}
	return s
}

// redactEmails masks the local parts of the e-mail addresses of s. In a chain like
// a@b.cn@c.cn the domain of one address is the local part of the next, and is masked
// too: the next search starts right after each @.
func redactEmails(s string) string {
	var b strings.Builder
	written := 0
	for pos := 0; pos < len(s); {
		m := emailPattern.FindStringSubmatchIndex(s[pos:])
		if m == nil {
			break
		}
		start, at := pos+m[0], pos+m[2]
		b.WriteString(s[written:start])
		b.WriteString("***")
		written = at
		_, size := utf8.DecodeRuneInString(s[at:])
		pos = at + size
	}
	if written == 0 {
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

// scanHints counts the digits (ASCII or full-width) of s and reports whether it holds
// an at sign (ASCII or full-width).
func scanHints(s string) (digits int, at bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@':
			at = true
		case c == 0xEF && i+2 < len(s) && s[i+1] == 0xBC && s[i+2] >= 0x90 && s[i+2] <= 0x99:
			digits++ // U+FF10..U+FF19, full-width digits
		case c == 0xEF && i+2 < len(s) && s[i+1] == 0xBC && s[i+2] == 0xA0:
			at = true // U+FF20, full-width at sign
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

// isSep reports whether r separates the groups of a number.
func isSep(r rune) bool {
	switch r {
	case ' ', '\t', '-',
		'\u00a0', // no-break space
		'\u2007', // figure space
		'\u2009', // thin space
		'\u202f', // narrow no-break space
		'\u3000', // ideographic space
		'\u2010', // hyphen
		'\u2011', // no-break hyphen
		'\u2012', // figure dash
		'\u2013', // en dash
		'\u2014', // em dash
		'\u2212', // minus sign
		'\uff0d': // full-width hyphen-minus
		return true
	}
	return false
}

func isX(r rune) bool { return r == 'X' || r == 'x' || r == 'Ｘ' || r == 'ｘ' }

// group is a run of digits in the text, ended by separators followed by another group,
// by an X, or by anything else.
type group struct {
	from, to  int // the group's ASCII digits are digits[from:to] of redactNumbers
	start     int // byte offset of the first digit
	digitsEnd int // byte offset after the last digit
	end       int // byte offset after the X, if any; else digitsEnd
}

// kind is the kind of number a sequence of groups is.
type kind uint8

const (
	kindNone   kind = iota
	kindID          // resident ID number, 18 characters
	kindOldID       // old resident ID number, 15 digits
	kindMobile      // mobile number, 11 digits, or 13 or 15 with 86 or 0086
	kindCard        // bank card number, 16 to 19 digits passing Luhn
	kindDigits      // any other 13 to 19 digits
)

// match is a sequence of n groups, from a given one on, that is a number of kind k;
// x: the number's last character is the X after its last group.
type match struct {
	n int
	k kind
	x bool
}

// redactNumbers masks the numbers of s (see Redact).
func redactNumbers(s string) string {
	var b strings.Builder
	written := 0 // bytes of s already copied to b
	var groupBuf [8]group
	var digitBuf [64]byte
	var matchBuf [8]match
	groups, digits, found := groupBuf[:0], digitBuf[:0], matchBuf[:0]
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if _, ok := digit(r); !ok {
			i += size
			continue
		}
		groups, digits, i = scanRun(s, i, groups[:0], digits[:0])
		if len(digits) < minPIIDigits {
			continue
		}
		found = matchRun(groups, digits, found[:0])
		for g := 0; g < len(groups); {
			m := found[g]
			if m.k == kindNone {
				g++
				continue
			}
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			last := groups[g+m.n-1]
			b.WriteString(s[written:groups[g].start])
			// The kept digits must not touch unmasked digits of the run, nor the
			// kept digits of a mask just before.
			keepFirst := g == 0
			next := g + m.n
			keepLast := next == len(groups) || found[next].k != kindNone
			writeMask(&b, digits[groups[g].from:last.to], m, keepFirst, keepLast)
			written = last.digitsEnd
			if m.x {
				written = last.end
			}
			g = next
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
		j := i
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if !isSep(r) {
				break
			}
			j += size
		}
		if j == i || j >= len(s) {
			return groups, digits, i
		}
		if r, _ := utf8.DecodeRuneInString(s[j:]); !isDigit(r) {
			return groups, digits, i
		}
		i = j
	}
}

func isDigit(r rune) bool {
	_, ok := digit(r)
	return ok
}

// matchRun appends to found, for each group of a run, the number masked from it on;
// found[g] is zero for a group that starts none or that a number before it takes in.
func matchRun(groups []group, digits []byte, found []match) []match {
	for g := range groups {
		found = append(found, recognised(groups, digits, g))
	}
	// next is the first group after g that starts a recognised number.
	next := len(groups)
	for g := len(groups) - 1; g >= 0; g-- {
		if found[g].k == kindNone {
			found[g] = anyDigits(groups, g, next)
		} else {
			next = g
		}
	}
	// Walk from the left: a group inside a number masked before it starts nothing.
	for g := 0; g < len(groups); {
		if n := found[g].n; n > 0 {
			for k := g + 1; k < g+n; k++ {
				found[k] = match{}
			}
			g += n
			continue
		}
		g++
	}
	return found
}

// recognised returns the longest sequence of whole groups from g on that is a resident
// ID, mobile or card number, if any.
func recognised(groups []group, digits []byte, g int) match {
	last := g // groups[g:last] hold at most maxPIIDigits digits
	for last < len(groups) && groups[last].to-groups[g].from <= maxPIIDigits {
		last++
	}
	for end := last; end > g; end-- {
		d := digits[groups[g].from:groups[end-1].to]
		if lg := groups[end-1]; lg.end > lg.digitsEnd && len(d) == 17 && residentID(d, 'X') {
			return match{n: end - g, k: kindID, x: true}
		}
		if k := classify(d); k != kindNone {
			return match{n: end - g, k: k}
		}
	}
	return match{}
}

// anyDigits returns the longest sequence of whole groups from g on of 13 to 19 digits
// that ends before group next, which starts a recognised number; else none.
func anyDigits(groups []group, g, next int) match {
	for end := next; end > g; end-- {
		n := groups[end-1].to - groups[g].from
		switch {
		case n > maxPIIDigits:
			continue
		case n < minAnyDigits:
			return match{}
		}
		return match{n: end - g, k: kindDigits}
	}
	return match{}
}

// classify returns the kind of number the ASCII digits d are, if recognised.
func classify(d []byte) kind {
	switch n := len(d); {
	case n == 18 && residentID(d[:17], d[17]):
		return kindID
	case n == 15 && oldResidentID(d):
		return kindOldID
	case n == 11 && mobile(d),
		n == 13 && string(d[:2]) == "86" && mobile(d[2:]),
		n == 15 && string(d[:4]) == "0086" && mobile(d[4:]):
		return kindMobile
	case n >= 16 && n <= maxPIIDigits && luhn(d):
		return kindCard
	}
	return kindNone
}

func mobile(d []byte) bool { return len(d) == 11 && d[0] == '1' && d[1] >= '3' }

// idWeights are the ISO 7064 MOD 11-2 weights of the first 17 digits of a resident ID:
// 2^(17-i) mod 11.
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// idCheck maps the weighted sum mod 11 to the check character.
const idCheck = "10X98765432"

// residentID reports whether 17 digits d and check character c ('0'-'9' or 'X') are
// a resident ID number: the check character is right, the region code does not start
// with 0 and the birth date YYYYMMDD is a real date from 1800 on.
func residentID(d []byte, c byte) bool {
	if len(d) != 17 || d[0] == '0' {
		return false
	}
	sum := 0
	for i, x := range d {
		sum += int(x-'0') * idWeights[i]
	}
	if idCheck[sum%11] != c {
		return false
	}
	century := string(d[6:8])
	if century != "18" && century != "19" && century != "20" {
		return false
	}
	return validDate(atoi(d[6:10]), atoi(d[10:12]), atoi(d[12:14]))
}

// oldResidentID reports whether 15 digits are an old resident ID number: a region code
// not starting with 0 and a real birth date 19YYMMDD.
func oldResidentID(d []byte) bool {
	return len(d) == 15 && d[0] != '0' && validDate(1900+atoi(d[6:8]), atoi(d[8:10]), atoi(d[10:12]))
}

func atoi(d []byte) int {
	n := 0
	for _, x := range d {
		n = n*10 + int(x-'0')
	}
	return n
}

// validDate reports whether year-month-day is a date of the Gregorian calendar.
func validDate(year, month, day int) bool {
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month]
	if month == 2 && (year%4 == 0 && year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

// luhn reports whether the digits d pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	for i := range d {
		x := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	return sum%10 == 0
}

const stars = "*******************"

// writeMask writes the mask of the number made of the ASCII digits d (and an X after
// them when m.x), keeping its first and last digits as its kind allows and keepFirst
// and keepLast permit.
func writeMask(b *strings.Builder, d []byte, m match, keepFirst, keepLast bool) {
	n := len(d)
	if m.x {
		n++
	}
	first, last := 4, 4
	switch {
	case m.k == kindID, m.k == kindOldID:
		first, last = 2, 2
	case m.k == kindMobile:
		first = n - 8 // 138, 86138 or 0086138
	}
	if !keepFirst {
		first = 0
	}
	if !keepLast {
		last = 0
	}
	b.Write(d[:first])
	b.WriteString(stars[:n-first-last])
	switch {
	case last == 0:
	case m.x:
		b.Write(d[n-last : n-1])
		b.WriteByte('X')
	default:
		b.Write(d[n-last:])
	}
}
