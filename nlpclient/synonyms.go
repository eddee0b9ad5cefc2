package nlpclient

// builtinSynonyms are groups every knowledge base of a language gets in addition to its
// own: everyday words customers use for the terms a knowledge base is written in. The
// first word of a group stands for all. A tenant's own groups come first and win.
var builtinSynonyms = map[string][][]string{
	LangEN: {
		{"refund", "money back", "reimburse", "reimbursement"},
		{"package", "parcel", "shipment"},
		{"buy", "purchase"},
		{"size", "sizing", "measurement", "fit"},
		{"fast", "faster", "quick", "quicker", "express", "expedited", "rush"},
		{"delivery", "deliver", "shipping"},
		{"pick up", "pickup", "collect", "grab"},
		{"cost", "fee", "price"},
		{"damaged", "broken", "defective", "torn", "ripped", "rip", "tear"},
		{"fix", "repair"},
		{"password", "passcode"},
		{"promo code", "coupon", "discount code", "voucher"},
		{"gift card", "giftcard", "gift certificate"},
		{"exchange", "swap"},
		{"change", "modify", "edit", "update"},
		{"support", "help", "assistance", "customer service"},
		{"human", "agent", "representative", "real person"},
		{"pay", "payment"},
		{"method", "option", "way"},
		{"store", "shop"},
		{"late", "delayed", "overdue"},
		{"wrong", "incorrect"},
	},
	LangZH: {
		{"丢失", "丢了", "弄丢", "不见了", "找不到", "遗失"},
		{"取款机", "自动柜员机"},
		{"营业", "上班", "开门"},
		{"周末", "周六", "周日", "星期六", "星期天", "星期日"},
		{"取号", "排号"},
		{"提高", "调高", "调大", "提升"},
		{"逾期", "没还上", "晚还", "忘记还"},
		{"销户", "注销", "销掉", "销卡"},
		{"怎么办", "咋办", "怎么弄", "怎么处理"},
		{"手续费", "费用", "收费"},
		{"借记卡", "储蓄卡"},
	},
}
