package knowledge

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Formats of a base's file, as Export takes them and ParseFormat returns them.
const (
	FormatYAML = "yaml" // the kb/ files' format, as nlpclient.ParseKB reads it
	FormatJSON = "json" // the admin API's shape
	FormatCSV  = "csv"  // a spreadsheet's rows, without synonyms
)

// ParseFormat returns the format s names: "yaml" (or "yml"), "json" or "csv", in any
// case, or one of the media types Parse reads. Anything else is an error wrapping
// ErrUnsupported.
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case FormatYAML, "yml":
		return FormatYAML, nil
	case FormatJSON, FormatCSV:
		return f, nil
	}
	if f, err := mediaFormat(s); err == nil {
		return f, nil
	}
	return "", fmt.Errorf("%w: format %q (want yaml, json or csv)", ErrUnsupported, s)
}

// mediaFormat is the format of the media type ct, whose parameters it ignores.
func mediaFormat(ct string) (string, error) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrUnsupported, ct)
	}
	switch mt {
	case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
		return FormatYAML, nil
	case "application/json":
		return FormatJSON, nil
	case "text/csv":
		return FormatCSV, nil
	}
	return "", fmt.Errorf("%w: %s (want application/yaml, application/json or text/csv)", ErrUnsupported, mt)
}

// utf8BOM starts the files some editors and spreadsheets write; Parse skips it.
var utf8BOM = []byte("\xef\xbb\xbf")

// Parse reads a base from data of the media type contentType (its parameters, such as
// charset, ignored) and validates it with Validate. lang is the language of a file that
// names none: always for CSV, which cannot.
//
// The media types and their formats:
//
//   - application/yaml, application/x-yaml, text/yaml, text/x-yaml: the YAML of the kb/
//     files, which nlpclient.ParseKB reads: language, synonyms and entries, each entry
//     with id, question, alternates, answer and tags. The keys tenant and version are
//     read and ignored; any other key is an error naming it and its line.
//   - application/json: {"language", "synonyms", "entries": [{"id", "question",
//     "alternates", "answer", "tags"}]}, which is what Export writes. An entry's
//     updated_at, and tenant, version and updated_at beside language, are read and
//     ignored; any other member is an error. Members are matched as encoding/json
//     matches them, regardless of case.
//   - text/csv: a header row naming the columns question and answer, and optionally
//     id, alternates and tags, in any order and any case; another column is an error.
//     Alternates and tags are separated by "|" in their cell; a "|" inside one is
//     written "\|" and a backslash before "|" or "\" is written "\\" (any other
//     backslash stands for itself). A row whose id is empty, or every row when there
//     is no id column, gets an id derived from its question alone, so that importing
//     the file again keeps it: the question's words in lower case joined by "-" for
//     a question in ASCII ("how-do-i-pay"), else "q-" and 8 hex digits of its
//     SHA-256; "-2", "-3"… make it unique in the file. Ids and headers are trimmed;
//     rows of blank cells are skipped.
//
// Other types are an error wrapping ErrUnsupported, and data longer than lim.MaxBytes
// one wrapping ErrTooLarge, both before reading. A UTF-8 byte order mark before the
// data is skipped. A file that cannot be read, or whose base is invalid, is an
// *InvalidError listing every problem found, in the order of their lines; a syntax
// error ends the reading and is listed with what reading found before it, without
// validating the entries read. A base past lim's sizes is ErrTooLarge, and one without
// entries is invalid. A zero field of lim is taken from DefaultLimits.
func Parse(contentType string, data []byte, lang string, lim Limits) (*Base, error) {
	lim = lim.orDefaults()
	format, err := mediaFormat(contentType)
	if err != nil {
		return nil, err
	}
	if len(data) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	data = bytes.TrimPrefix(data, utf8BOM)

	var p parser
	p.lim = lim
	p.lines = newLineCounter(data)
	switch format {
	case FormatYAML:
		err = p.yaml(data)
	case FormatJSON:
		err = p.json(data)
	case FormatCSV:
		err = p.csv(data)
	}
	if err != nil {
		if errors.Is(err, errSyntax) {
			return nil, p.invalid()
		}
		return nil, err
	}
	if p.base.Language == "" {
		p.base.Language = lang
	}
	if len(p.base.Entries) == 0 && len(p.errs) == 0 {
		p.fail(0, "entries", "no entries")
	}
	err = validate(&p.base, lim, &p.pos)
	var inv *InvalidError
	switch {
	case errors.As(err, &inv):
		p.merge(inv.Errors)
	case err != nil:
		return nil, err
	}
	if len(p.errs) > 0 {
		return nil, p.invalid()
	}
	return &p.base, nil
}

// errSyntax ends a parse whose file cannot be read on: its problem is in parser.errs.
var errSyntax = errors.New("syntax")

// parser reads one file into base, keeping where each part was and what was wrong.
type parser struct {
	lim   Limits
	lines *lineCounter
	base  Base
	pos   positions
	errs  []FieldError
	entry int // the number of the entry being read, from 1; 0 outside entries
}

// fail records a problem, of the entry being read if any.
func (p *parser) fail(line int, field, msg string) {
	if p.entry > 0 {
		msg = fmt.Sprintf("entry %d: %s", p.entry, msg)
	}
	p.errs = append(p.errs, FieldError{Line: line, Field: field, Message: msg})
}

// syntax records a problem that ends the reading, and returns errSyntax.
func (p *parser) syntax(line int, msg string) error {
	p.errs = append(p.errs, FieldError{Line: line, Message: msg})
	return errSyntax
}

// merge adds the problems validation found, but not those of a field whose value
// parsing already refused (and so left empty), at the same line.
func (p *parser) merge(errs []FieldError) {
	type at struct {
		line  int
		field string
	}
	refused := make(map[at]bool, len(p.errs))
	for _, e := range p.errs {
		refused[at{e.Line, e.Field}] = true
	}
	for _, e := range errs {
		if !refused[at{e.Line, e.Field}] || e.Field == "" {
			p.errs = append(p.errs, e)
		}
	}
}

// invalid is the parse's problems, in the order of their lines.
func (p *parser) invalid() *InvalidError {
	slices.SortStableFunc(p.errs, func(a, b FieldError) int { return cmp.Compare(a.Line, b.Line) })
	return &InvalidError{Errors: p.errs}
}

func (p *parser) tooManyEntries(n int) error {
	return fmt.Errorf("%w: %d entries or more, at most %d", ErrTooLarge, n, p.lim.MaxEntries)
}

// YAML

// yamlLine finds the line in a message of the YAML parser.
var yamlLine = regexp.MustCompile(`^line (\d+): `)

func (p *parser) yaml(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return p.syntax(0, "the file is empty")
		}
		return p.yamlSyntax(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return p.syntax(next.Line, "more than one YAML document")
	case !errors.Is(err, io.EOF):
		return p.yamlSyntax(err)
	}
	if len(doc.Content) == 0 {
		return p.syntax(0, "the file is empty")
	}

	// Aliases let a short file name one long list many times; the file is refused
	// once it has asked for more items than it has bytes.
	w := yamlWalker{parser: p, budget: len(data) + 1}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return p.syntax(root.Line, "the file is not a mapping of language, synonyms and entries")
	}
	w.mapping(root, func(key string, k, v *yaml.Node) bool {
		switch key {
		case "tenant", "version":
		case "language":
			p.pos.language = k.Line
			p.base.Language = w.str(k, v, key)
		case "synonyms":
			w.synonyms(k, v)
		case "entries":
			w.entries(k, v)
		default:
			return false
		}
		return true
	})
	return w.err
}

func (p *parser) yamlSyntax(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	return p.syntax(line, msg)
}

// yamlWalker reads a base out of a YAML node tree.
type yamlWalker struct {
	*parser
	budget int   // items left to take before the aliases are judged too many
	err    error // ErrTooLarge once the budget is spent
}

// resolve is n, or what it is an alias of.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// spend takes n items from the budget, false once it is spent.
func (w *yamlWalker) spend(n int) bool {
	if w.budget -= n; w.budget < 0 && w.err == nil {
		w.err = fmt.Errorf("%w: its aliases repeat more items than the file has bytes", ErrTooLarge)
	}
	return w.err == nil
}

// mapping calls f with each key of m and its value, in order, until the budget is
// spent; f returns false for a key it does not know, which mapping reports. A key
// written twice is reported without calling f.
func (w *yamlWalker) mapping(m *yaml.Node, f func(key string, k, v *yaml.Node) bool) {
	if !w.spend(len(m.Content)) {
		return
	}
	seen := make(map[string]int, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content) && w.err == nil; i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.fail(k.Line, "", "a key must be a string")
			continue
		}
		if l, ok := seen[k.Value]; ok {
			w.fail(k.Line, k.Value, fmt.Sprintf("key %s is written twice (first at line %d)", quote(k.Value), l))
			continue
		}
		seen[k.Value] = k.Line
		if !f(k.Value, k, v) {
			w.fail(k.Line, k.Value, fmt.Sprintf("unknown key %s", quote(k.Value)))
		}
	}
}

// str is the text of the scalar v, the value of key k: "" for null, and for a list or
// a mapping, which is reported at k's line.
func (w *yamlWalker) str(k, v *yaml.Node, field string) string {
	if v.Kind != yaml.ScalarNode {
		w.fail(k.Line, field, field+" must be a string")
		return ""
	}
	if v.Tag == "!!null" {
		return ""
	}
	return v.Value
}

// list is the strings of the sequence v, the value of key k; nil for null.
func (w *yamlWalker) list(k, v *yaml.Node, field string) []string {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		w.fail(k.Line, field, field+" must be a list of strings")
		return nil
	}
	if !w.spend(len(v.Content)) {
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode {
			w.fail(item.Line, field, field+" must be a list of strings")
			continue
		}
		if item.Tag != "!!null" {
			out = append(out, item.Value)
		}
	}
	return out
}

func (w *yamlWalker) synonyms(k, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(k.Line, "synonyms", "synonyms must be a list of lists of words")
		return
	}
	if !w.spend(len(n.Content)) {
		return
	}
	for _, g := range n.Content {
		g = resolve(g)
		w.pos.synonyms = append(w.pos.synonyms, g.Line)
		w.base.Synonyms = append(w.base.Synonyms, w.list(g, g, "synonyms"))
	}
}

func (w *yamlWalker) entries(k, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(k.Line, "entries", "entries must be a list")
		return
	}
	if len(n.Content) > w.lim.MaxEntries {
		w.err = w.tooManyEntries(len(n.Content))
		return
	}
	if !w.spend(len(n.Content)) {
		return
	}
	w.base.Entries = make([]Entry, 0, len(n.Content))
	w.pos.entries = make([]entryPos, 0, len(n.Content))
	for i, en := range n.Content {
		en = resolve(en)
		var e Entry
		ep := entryPos{line: en.Line}
		w.entry = i + 1
		if en.Kind != yaml.MappingNode {
			w.fail(en.Line, "", "not a mapping of id, question, alternates, answer and tags")
			ep.broken = true
		} else {
			w.mapping(en, func(key string, k, v *yaml.Node) bool {
				switch key {
				case "id":
					ep.id = k.Line
					e.ID = w.str(k, v, key)
				case "question":
					ep.question = k.Line
					e.Question = w.str(k, v, key)
				case "answer":
					ep.answer = k.Line
					e.Answer = w.str(k, v, key)
				case "alternates":
					ep.alternates = k.Line
					e.Alternates = w.list(k, v, key)
				case "tags":
					ep.tags = k.Line
					e.Tags = w.list(k, v, key)
				default:
					return false
				}
				return true
			})
		}
		w.entry = 0
		if w.err != nil {
			return
		}
		w.base.Entries = append(w.base.Entries, e)
		w.pos.entries = append(w.pos.entries, ep)
	}
}

// JSON

// jsonEntry is an entry as JSON brings it; updated_at is read and ignored.
type jsonEntry struct {
	ID         string          `json:"id"`
	Question   string          `json:"question"`
	Alternates []string        `json:"alternates"`
	Answer     string          `json:"answer"`
	Tags       []string        `json:"tags"`
	UpdatedAt  json.RawMessage `json:"updated_at"`
}

func (p *parser) json(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	// next is the offset of the next value: the decoder's, past the spaces and the
	// comma or colon before it.
	next := func() int {
		off := int(dec.InputOffset())
		for off < len(data) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
			off++
		}
		return off
	}
	tok, err := dec.Token()
	if err != nil {
		return p.jsonSyntax(err)
	}
	if tok != json.Delim('{') {
		return p.syntax(1, "the file is not an object of language, synonyms and entries")
	}
	seen := map[string]int{}
	for dec.More() {
		line := p.lines.at(next())
		tok, err := dec.Token()
		if err != nil {
			return p.jsonSyntax(err)
		}
		key, _ := tok.(string)
		if l, ok := seen[key]; ok {
			p.fail(line, key, fmt.Sprintf("member %s is written twice (first at line %d)", quote(key), l))
		}
		seen[key] = line
		switch key {
		case "language":
			p.pos.language = line
			err = p.jsonValue(dec, next(), key, &p.base.Language)
		case "synonyms":
			err = p.jsonValue(dec, next(), key, &p.base.Synonyms)
		case "entries":
			err = p.jsonEntries(dec, next)
		case "tenant", "version", "updated_at":
			err = p.jsonValue(dec, next(), key, nil)
		default:
			p.fail(line, key, fmt.Sprintf("unknown member %s", quote(key)))
			err = p.jsonValue(dec, next(), key, nil)
		}
		if err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return p.jsonSyntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return p.syntax(p.lines.at(next()), "more after the end of the object")
	}
	return nil
}

// jsonValue reads the next value, which starts at offset start, into v (or past it
// when v is nil). A value of the wrong type or with an unknown member is recorded as a
// problem of field; only a syntax error is returned.
func (p *parser) jsonValue(dec *json.Decoder, start int, field string, v any) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return p.jsonSyntax(err)
	}
	if v == nil {
		return nil
	}
	// Decoding raw on its own gives offsets from the value's start, which the
	// stream's decoder does not.
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &te):
		if te.Field == "" && field == "" {
			p.fail(p.lines.at(start), "", fmt.Sprintf("must be %s, not %s", jsonKind(te.Type), te.Value))
			return nil
		}
		name := cmp.Or(te.Field, field)
		if i := strings.IndexByte(te.Field, '.'); i >= 0 {
			field = te.Field[:i]
		} else if te.Field != "" {
			field = te.Field
		}
		p.fail(p.lines.at(start+max(int(te.Offset)-1, 0)), field, fmt.Sprintf("%s must be %s, not %s", name, jsonKind(te.Type), te.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		key, _ := strconv.Unquote(name)
		p.fail(p.lines.at(start), key, "unknown member "+name)
	default:
		p.fail(p.lines.at(start), field, strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func (p *parser) jsonEntries(dec *json.Decoder, next func() int) error {
	line := p.lines.at(next())
	tok, err := dec.Token()
	if err != nil {
		return p.jsonSyntax(err)
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		p.fail(line, "entries", "entries must be a list")
		return p.jsonSkip(dec, tok)
	}
	for dec.More() {
		if len(p.base.Entries) == p.lim.MaxEntries {
			return p.tooManyEntries(len(p.base.Entries) + 1)
		}
		start := next()
		ep := entryPos{line: p.lines.at(start)}
		p.entry = len(p.base.Entries) + 1
		n := len(p.errs)
		var je jsonEntry
		if err := p.jsonValue(dec, start, "", &je); err != nil {
			return err
		}
		for _, fe := range p.errs[n:] {
			switch fe.Field {
			case "":
				ep.broken = true
			default:
				// A field of the wrong type is left empty: validation must find
				// its emptiness at the line already reported, and leave it unsaid.
				ep.setField(fe.Field, fe.Line)
			}
		}
		p.entry = 0
		p.base.Entries = append(p.base.Entries, Entry{ID: je.ID, Question: je.Question, Alternates: je.Alternates, Answer: je.Answer, Tags: je.Tags})
		p.pos.entries = append(p.pos.entries, ep)
	}
	if _, err := dec.Token(); err != nil {
		return p.jsonSyntax(err)
	}
	return nil
}

// jsonSkip reads past the rest of the value that tok opened.
func (p *parser) jsonSkip(dec *json.Decoder, tok json.Token) error {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return p.jsonSyntax(err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

func (p *parser) jsonSyntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The stream's decoder counts a syntax error's offset from where it began the
		// value; the whole file checked at once counts from its start.
		if errors.As(json.Unmarshal(p.lines.data, new(json.RawMessage)), &se) {
			return p.syntax(p.lines.at(int(se.Offset)-1), strings.TrimPrefix(se.Error(), "json: "))
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return p.syntax(p.lines.at(len(p.lines.data)), "the file ends too soon")
	}
	return p.syntax(0, strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names what a value of type t is written as.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Slice {
			return "a list of lists"
		}
		return "a list"
	case reflect.Struct:
		return "an object"
	}
	return t.String()
}

// CSV

// csvColumns are the columns of a CSV file, in the order Export writes them.
var csvColumns = []string{"id", "question", "alternates", "answer", "tags"}

func (p *parser) csv(data []byte) error {
	r := csv.NewReader(bytes.NewReader(data))
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return p.syntax(0, "the file is empty")
	}
	if err != nil {
		return p.csvSyntax(err)
	}
	col := map[string]int{}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case !slices.Contains(csvColumns, name):
			p.fail(1, name, fmt.Sprintf("unknown column %s (want id, question, alternates, answer and tags)", quote(name)))
		case col[name] > 0:
			p.fail(1, name, fmt.Sprintf("column %s is written twice", name))
		default:
			col[name] = i + 1 // 0 is absent
		}
	}
	for _, name := range []string{"question", "answer"} {
		if col[name] == 0 {
			p.fail(1, name, "no column "+name)
		}
	}
	if len(p.errs) > 0 {
		return errSyntax
	}
	cell := func(rec []string, name string) string {
		if i := col[name]; i > 0 {
			return rec[i-1]
		}
		return ""
	}
	line := func(name string) int {
		if i := col[name]; i > 0 {
			l, _ := r.FieldPos(i - 1)
			return l
		}
		return 0
	}

	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
			p.fail(pe.StartLine, "", fmt.Sprintf("%d fields, but the header has %d", len(rec), len(header)))
			p.base.Entries = append(p.base.Entries, Entry{})
			p.pos.entries = append(p.pos.entries, entryPos{line: pe.StartLine, broken: true})
			continue
		}
		if err != nil {
			return p.csvSyntax(err)
		}
		if !slices.ContainsFunc(rec, func(s string) bool { return strings.TrimSpace(s) != "" }) {
			continue
		}
		if len(p.base.Entries) == p.lim.MaxEntries {
			return p.tooManyEntries(len(p.base.Entries) + 1)
		}
		start, _ := r.FieldPos(0)
		p.base.Entries = append(p.base.Entries, Entry{
			ID:         strings.TrimSpace(cell(rec, "id")),
			Question:   cell(rec, "question"),
			Alternates: splitPipes(cell(rec, "alternates")),
			Answer:     cell(rec, "answer"),
			Tags:       splitPipes(cell(rec, "tags")),
		})
		p.pos.entries = append(p.pos.entries, entryPos{
			line: start, id: line("id"), question: line("question"), alternates: line("alternates"),
			answer: line("answer"), tags: line("tags"),
		})
	}

	// Derive the missing ids after reading every given one, so that a derived id
	// never takes one a later row names.
	used := make(map[string]bool, len(p.base.Entries))
	for _, e := range p.base.Entries {
		used[e.ID] = true
	}
	for i := range p.base.Entries {
		e := &p.base.Entries[i]
		if e.ID != "" || p.pos.entries[i].broken || strings.TrimSpace(e.Question) == "" {
			continue
		}
		id := deriveID(e.Question, p.lim.MaxIDChars)
		for n := 2; used[id]; n++ {
			id = fmt.Sprintf("%s-%d", deriveID(e.Question, p.lim.MaxIDChars), n)
		}
		used[id] = true
		e.ID = id
	}
	return nil
}

func (p *parser) csvSyntax(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return p.syntax(pe.Line, pe.Err.Error())
	}
	return p.syntax(0, err.Error())
}

// deriveID is the id of an entry of a CSV file without one, from its question q: the
// same question always gets the same id, so importing a file again keeps its entries'
// ids. A question of ASCII letters and digits gets its words, lower case, joined by "-"
// and cut at a word to at most 40 characters (or max-4, when that is less, to leave
// room for a suffix that makes it unique): "How do I reset my password?" is
// "how-do-i-reset-my-password". Any other (Chinese, accented, or without any letter or
// digit) gets "q-" and the first 8 hex digits of the SHA-256 of the trimmed question.
func deriveID(q string, max int) string {
	q = strings.TrimSpace(q)
	limit := min(40, max-4)
	var b strings.Builder
	ascii := true
	word := false
	for _, r := range q {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		case r > 0x7f:
			ascii = false
		default:
			word = false
			continue
		}
		if !ascii {
			break
		}
		if !word && b.Len() > 0 {
			b.WriteByte('-')
		}
		word = true
		b.WriteRune(r)
	}
	slug := b.String()
	if ascii && slug != "" && limit > 0 {
		if len(slug) > limit {
			cut := strings.LastIndexByte(slug[:limit+1], '-')
			if cut <= 0 {
				cut = limit
			}
			slug = slug[:cut]
		}
		return slug
	}
	sum := sha256.Sum256([]byte(q))
	return "q-" + hex.EncodeToString(sum[:4])
}

// splitPipes is the items of a CSV cell of alternates or tags, separated by "|", with
// "\|" standing for "|" and "\\" for "\" inside one; nil for a blank cell.
func splitPipes(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '|' || s[i+1] == '\\'):
			i++
			b.WriteByte(s[i])
		case c == '|':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(out, b.String())
}

// joinPipes is the CSV cell of items, as splitPipes reads it.
func joinPipes(items []string) string {
	var b strings.Builder
	for i, s := range items {
		if i > 0 {
			b.WriteByte('|')
		}
		for j := 0; j < len(s); j++ {
			if s[j] == '|' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
	}
	return b.String()
}

// lineCounter turns offsets into data into lines, counting on from the last offset
// asked for when asked in order, so that numbering a whole file is linear.
type lineCounter struct {
	data []byte
	off  int // counted up to here
	line int // the line of off
}

func newLineCounter(data []byte) *lineCounter {
	return &lineCounter{data: data, line: 1}
}

// at is the line (1-based) of the byte at off.
func (c *lineCounter) at(off int) int {
	off = min(max(off, 0), len(c.data))
	if off < c.off {
		c.off, c.line = 0, 1
	}
	c.line += bytes.Count(c.data[c.off:off], []byte{'\n'})
	c.off = off
	return c.line
}

// Export

// Export writes b to w in format ("yaml", "json" or "csv", as ParseFormat reads them)
// and returns the media type of what it wrote. What it writes, Parse reads back into
// the same entries, save their updated_at in YAML and CSV.
//
//   - yaml: the kb/ files' format, which nlpclient.ParseKB reads too (when b has an
//     entry): language, synonyms and entries, without tenant and version.
//   - json: {"language", "synonyms", "entries"}, each entry with id, question,
//     alternates, answer, tags and updated_at, as the admin API shows them; empty
//     alternates and tags are [], not null.
//   - csv: a UTF-8 byte order mark, for spreadsheets that otherwise take the file for
//     another encoding, the header id,question,alternates,answer,tags and a row per
//     entry, alternates and tags joined by "|" and escaped as Parse reads them. CSV has
//     no place for synonyms or the language, which are not written: importing the file
//     keeps the tenant's language and leaves the base without synonyms. Cells are
//     written as they are: a spreadsheet may take a cell that starts with "=" for a
//     formula.
//
// Another format is an error wrapping ErrUnsupported.
func Export(w io.Writer, b *Base, format string) (contentType string, err error) {
	f, err := ParseFormat(format)
	if err != nil {
		return "", fmt.Errorf("knowledge: export: %w", err)
	}
	switch f {
	case FormatYAML:
		contentType, err = "application/yaml", exportYAML(w, b)
	case FormatJSON:
		contentType, err = "application/json", exportJSON(w, b)
	case FormatCSV:
		contentType, err = "text/csv; charset=utf-8", exportCSV(w, b)
	}
	if err != nil {
		return "", fmt.Errorf("knowledge: export %s: %w", f, err)
	}
	return contentType, nil
}

// yamlBase is a base as the kb/ files write it; see nlpclient.KB.
type yamlBase struct {
	Language string      `yaml:"language"`
	Synonyms []flowList  `yaml:"synonyms,omitempty"`
	Entries  []yamlEntry `yaml:"entries"`
}

// flowList is a list YAML writes on one line, as the kb/ files write a synonym group:
// [挂失, 冻结, 止付].
type flowList []string

func (l flowList) MarshalYAML() (any, error) {
	var n yaml.Node
	if err := n.Encode([]string(l)); err != nil {
		return nil, err
	}
	n.Style = yaml.FlowStyle
	return &n, nil
}

type yamlEntry struct {
	ID         string   `yaml:"id"`
	Question   string   `yaml:"question"`
	Alternates []string `yaml:"alternates,omitempty"`
	Answer     string   `yaml:"answer"`
	Tags       []string `yaml:"tags,omitempty,flow"`
}

func exportYAML(w io.Writer, b *Base) error {
	out := yamlBase{Language: b.Language, Entries: make([]yamlEntry, len(b.Entries))}
	for _, g := range b.Synonyms {
		out.Synonyms = append(out.Synonyms, g)
	}
	for i, e := range b.Entries {
		out.Entries[i] = yamlEntry{ID: e.ID, Question: e.Question, Alternates: e.Alternates, Answer: e.Answer, Tags: e.Tags}
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return err
	}
	return enc.Close()
}

// jsonBase is a base as the admin API shows it.
type jsonBase struct {
	Language string         `json:"language"`
	Synonyms [][]string     `json:"synonyms,omitempty"`
	Entries  []jsonOutEntry `json:"entries"`
}

type jsonOutEntry struct {
	ID         string    `json:"id"`
	Question   string    `json:"question"`
	Alternates []string  `json:"alternates"`
	Answer     string    `json:"answer"`
	Tags       []string  `json:"tags"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func exportJSON(w io.Writer, b *Base) error {
	out := jsonBase{Language: b.Language, Synonyms: b.Synonyms, Entries: make([]jsonOutEntry, len(b.Entries))}
	for i, e := range b.Entries {
		out.Entries[i] = jsonOutEntry{
			ID: e.ID, Question: e.Question, Alternates: orEmpty(e.Alternates), Answer: e.Answer,
			Tags: orEmpty(e.Tags), UpdatedAt: e.UpdatedAt,
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func exportCSV(w io.Writer, b *Base) error {
	if _, err := w.Write(utf8BOM); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(csvColumns); err != nil {
		return err
	}
	for _, e := range b.Entries {
		if err := cw.Write([]string{e.ID, e.Question, joinPipes(e.Alternates), e.Answer, joinPipes(e.Tags)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
