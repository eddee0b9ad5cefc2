package nlpclient

import "strings"

// foreignNames are companies and products customers mention when asking about another
// business: other banks and payment platforms, marketplaces, retailers and services. A
// question naming one that the tenant's knowledge base never names is most likely about
// that business, whatever words it shares with an entry. The lists are general, not
// tied to any tenant; a name the knowledge base does mention (a bank that lists 微信 or
// Google Pay among its payment methods) is dropped for that tenant.
var foreignNames = map[string][]string{
	LangZH: {
		"支付宝", "花呗", "借呗", "余额宝", "微信", "财付通", "云闪付", "京东", "白条", "金条", "淘宝", "天猫", "拼多多",
		"美团", "抖音", "快手", "携程", "滴滴", "工商银行", "工行", "建设银行", "建行", "农业银行", "农行", "中国银行",
		"交通银行", "招商银行", "招行", "浦发", "民生银行", "兴业银行", "中信银行", "光大银行", "平安银行", "邮储",
		"邮政储蓄", "华夏银行", "广发银行", "北京银行", "上海银行", "微众", "网商银行", "比特币", "以太坊", "股票",
		"a股", "港股", "美股", "彩票", "苹果手机", "iphone", "华为", "小米", "特斯拉",
	},
	LangEN: {
		"amazon", "ebay", "walmart", "costco", "etsy", "aliexpress", "alibaba", "shein", "temu", "best buy", "ikea",
		"home depot", "wayfair", "kohl's", "macy's", "nordstrom", "rei", "target store", "iphone", "ipad", "android",
		"samsung", "netflix", "spotify", "hulu", "disney+", "uber", "lyft", "doordash", "airbnb", "facebook",
		"instagram", "tiktok", "twitter", "microsoft", "xbox", "playstation", "nintendo", "chase bank", "wells fargo",
		"bank of america", "citibank", "bitcoin", "crypto", "ethereum", "stock market", "stocks",
	},
}

// foreignMatcher finds foreign names in a normalised message.
type foreignMatcher struct {
	zh    []string
	words map[string]bool // single-word names
	multi []string        // names of several words, matched with spaces around
}

// newForeignMatcher keeps the foreign names a knowledge base does not mention itself.
// A name counts as mentioned when all its terms are in the index (phrasings or answers):
// a cheap test that may keep a few names too many, never one the KB spells out.
func newForeignMatcher(lang string, tok *tokenizer, ix *index) *foreignMatcher {
	m := &foreignMatcher{words: map[string]bool{}}
	for _, n := range foreignNames[lang] {
		n = normalize(n)
		known := true
		for _, t := range tok.tokenize(n) {
			if t.kind == kindUnigram {
				continue
			}
			if _, ok := ix.terms[t.text]; !ok {
				known = false
			}
		}
		switch {
		case known:
		case strings.IndexFunc(n, isCJK) >= 0:
			m.zh = append(m.zh, n)
		case strings.Contains(n, " "):
			m.multi = append(m.multi, " "+n+" ")
		default:
			m.words[n] = true
		}
	}
	return m
}

// isSeparator splits text into words for name matching; apostrophes and + stay in words.
func isSeparator(r rune) bool {
	return !isWordRune(r) && !isCJK(r) && r != '\'' && r != '+'
}

// names reports whether a message names a foreign company or product.
func (m *foreignMatcher) names(msg string) bool {
	s := normalize(msg)
	for _, n := range m.zh {
		if strings.Contains(s, n) {
			return true
		}
	}
	words := strings.FieldsFunc(s, isSeparator)
	for _, w := range words {
		if m.words[w] || m.words[strings.TrimSuffix(w, "'s")] {
			return true
		}
	}
	if len(m.multi) > 0 {
		joined := " " + strings.Join(words, " ") + " "
		for _, n := range m.multi {
			if strings.Contains(joined, n) {
				return true
			}
		}
	}
	return false
}
