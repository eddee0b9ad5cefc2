// Package fold maps runes to the form Fengda's text matching compares: the FAQ engine's
// tokenizer and the model client's prompt leak guard fold alike, so that what one
// treats as the same text the other does too. It imports nothing of ours.
package fold

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TradToSimp folds the traditional characters customers most often type (from Taiwan,
// Hong Kong or a traditional input method) into the simplified ones knowledge bases are
// written in. A short table of common one-to-one pairs, not a full conversion: enough
// for the words of banking and shopping; ambiguous characters (乾, 後 as a surname) are
// left as they are or take their usual reading.
var TradToSimp = func() map[rune]rune {
	pairs := []rune("丟丢" +
		"開开戶户帳账賬账號号錢钱轉转銀银貸贷還还碼码話话電电費费額额們们麼么嗎吗點点當当時时間间網网機机現现與与為为會会個个這这" +
		"來来說说對对從从後后發发經经過过裡里裏里樣样買买賣卖單单張张門门問问題题辦办業业務务認认證证請请讓让該该設设關关閉闭掛挂" +
		"凍冻結结餘余確确購购貨货幣币匯汇兌兑換换據据處处補补聯联絡络繫系臺台訊讯簡简體体歲岁齡龄區区國国際际長长優优員员實实動动" +
		"級级種种類类計计劃划筆笔紀纪錄录記记憑凭應应線线頁页顯显檢检雙双邊边層层數数歷历約约預预貼贴專专屬属權权兩两萬万億亿塊块" +
		"價价減减滿满續续擇择選选項项標标準准險险獎奖鎖锁櫃柜鐘钟車车運运輸输達达遞递郵邮遺遗竊窃盜盗騙骗詐诈護护團团隊队驗验頭头" +
		"臉脸識识別别壓压靈灵獲获稅税報报銷销儲储繳缴納纳異异斷断無无給给總总難难須须領领紙纸統统維维緊紧編编組组細细終终絕绝負负" +
		"責责貴贵資资賠赔質质贈赠錯错鏈链閒闲隨随雜杂靜静響响頻频顧顾風风飛飞養养髮发魚鱼啟启氣气決决沒没況况測测濟济滯滞狀状獨独" +
		"產产畫画療疗盡尽監监禮礼稱称穩稳範范簽签緣缘織织罰罚聲声聽听腦脑舊旧見见規规覺觉訂订討讨許许註注詢询試试詳详誤误課课調调" +
		"談谈論论諮咨謝谢譯译讀读變变財财販贩貿贸賴赖贖赎趕赶跡迹蹤踪軟软較较載载輕轻輛辆農农週周進进遠远適适遲迟鄰邻醫医釋释針针" +
		"鈔钞鋪铺鍵键閃闪閱阅隱隐雲云顏颜飲饮馬马麥麦黃黄卻却齊齐屆届傳传償偿僅仅備备兒儿剛刚勞劳協协歡欢殘残獻献夠够寶宝寫写將将" +
		"導导廣广彈弹強强徵征態态慣惯懷怀擔担擁拥攜携敗败於于書书東东條条極极構构歸归溝沟滅灭熱热燈灯爲为礙碍壞坏奪夺廠厂綁绑綜综" +
		"罷罢舉举藥药虧亏衝冲襯衬覽览觸触訪访詞词誠诚賺赚趨趋蹟迹軌轨辭辞遙遥鄭郑釐厘鋼钢錶表陸陆陣阵隻只雞鸡離离頒颁頓顿騎骑驅驱" +
		"鬆松鳳凤麗丽齣出")
	m := make(map[rune]rune, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}()

// tradKeys holds the keys of TradToSimp, so that a character with no traditional form
// (most of a simplified text) skips the map.
var tradKeys = func() Set {
	var rs []rune
	for r := range TradToSimp {
		rs = append(rs, r)
	}
	return NewSet(rs)
}()

// Set is a set of runes held as a bitmap over the range they span.
type Set struct {
	lo, hi rune
	bits   []uint64
}

// NewSet returns the set of rs.
func NewSet(rs []rune) Set {
	if len(rs) == 0 {
		return Set{lo: 1, hi: 0}
	}
	s := Set{lo: slices.Min(rs), hi: slices.Max(rs)}
	s.bits = make([]uint64, (s.hi-s.lo)/64+1)
	for _, r := range rs {
		s.bits[(r-s.lo)/64] |= 1 << ((r - s.lo) % 64)
	}
	return s
}

// Has reports whether r is in s.
func (s *Set) Has(r rune) bool {
	return r >= s.lo && r <= s.hi && s.bits[(r-s.lo)/64]&(1<<((r-s.lo)%64)) != 0
}

// Rune maps a rune to the form matching compares: full-width ASCII and the ideographic
// space become their half-width forms (the part of NFKC that customers' input methods
// produce), common traditional characters their simplified forms, and letters are
// lower-cased.
func Rune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	switch {
	case r >= 0xFF01 && r <= 0xFF5E:
		r -= 0xFEE0
	case r == 0x3000:
		r = ' '
	case r == '’' || r == '‘' || r == 'ʼ':
		r = '\''
	case r >= 0x4E00:
		if tradKeys.Has(r) {
			return TradToSimp[r]
		}
		if r <= 0x9FFF {
			return r // a CJK unified ideograph has no case
		}
	}
	return unicode.ToLower(r)
}

// IsCJK reports whether r is written without spaces between words, so it is indexed by
// character n-grams instead of words.
func IsCJK(r rune) bool {
	switch {
	case r < 0x2E80:
		return false // below the CJK radicals there is no Han, Hiragana or Katakana
	case r >= 0x4E00 && r <= 0x9FFF:
		return true // the CJK unified ideographs are all Han
	}
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana)
}

// String folds a text rune by rune; invalid UTF-8 becomes spaces. A text that folding
// leaves as it is (most messages) is returned without a copy.
func String(s string) string {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				return stringFrom(s, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || Rune(r) != r {
			return stringFrom(s, i)
		}
		i += size
	}
	return s
}

// stringFrom is String of s whose first i bytes fold to themselves.
func stringFrom(s string, i int) string {
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	s = s[i:]
	for i, r := range s {
		if r < utf8.RuneSelf {
			b.WriteByte(byte(Rune(r)))
			continue
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				b.WriteByte(' ')
				continue
			}
		}
		b.WriteRune(Rune(r))
	}
	return b.String()
}
