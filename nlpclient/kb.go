package nlpclient

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Languages a knowledge base can be written in.
const (
	LangZH = "zh"
	LangEN = "en"
)

// ErrInvalidKB is wrapped by every validation error ParseKB and LoadKB return, so callers
// can tell a bad file from an unreadable one with errors.Is.
var ErrInvalidKB = errors.New("invalid knowledge base")

// KB is one tenant's knowledge base as written in its YAML file.
type KB struct {
	Tenant   string `yaml:"tenant"`
	Language string `yaml:"language"`
	Version  int    `yaml:"version"`
	// Synonyms are groups of words the tenant's customers use interchangeably, for example
	// [挂失, 冻结, 止付] or [refund, money back]. The first word of a group stands for all.
	Synonyms [][]string `yaml:"synonyms,omitempty"`
	Entries  []Entry    `yaml:"entries"`
}

// Entry is one question and its answer.
type Entry struct {
	ID       string `yaml:"id"`
	Question string `yaml:"question"`
	// Alternates are other ways customers ask the same question.
	Alternates []string `yaml:"alternates,omitempty"`
	Answer     string   `yaml:"answer"`
	// Tags group related entries; follow-up questions prefer entries sharing a tag with
	// the entry answered before.
	Tags []string `yaml:"tags,omitempty"`
}

// LoadKB reads and validates the knowledge base at path.
func LoadKB(path string) (*KB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load knowledge base: %w", err)
	}
	kb, err := ParseKB(data)
	if err != nil {
		return nil, fmt.Errorf("load knowledge base %s: %w", path, err)
	}
	return kb, nil
}

// ParseKB decodes and validates a knowledge base. Unknown keys are an error that names
// the key; so are a missing or unsupported language, no entries, an empty or duplicate
// id, and an entry without question or answer.
func ParseKB(data []byte) (*KB, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var kb KB
	if err := dec.Decode(&kb); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrInvalidKB)
		}
		return nil, fmt.Errorf("%w: decode: %w", ErrInvalidKB, err)
	}
	if err := kb.Validate(); err != nil {
		return nil, err
	}
	return &kb, nil
}

// Validate checks what ParseKB checks, for a knowledge base built in code; its errors
// wrap ErrInvalidKB.
func (kb *KB) Validate() error {
	switch kb.Language {
	case LangZH, LangEN:
	case "":
		return fmt.Errorf("%w: language is missing (want zh or en)", ErrInvalidKB)
	default:
		return fmt.Errorf("%w: language %q is not supported (want zh or en)", ErrInvalidKB, kb.Language)
	}
	if len(kb.Entries) == 0 {
		return fmt.Errorf("%w: no entries", ErrInvalidKB)
	}
	seen := make(map[string]int, len(kb.Entries))
	for i, e := range kb.Entries {
		id := strings.TrimSpace(e.ID)
		switch {
		case id == "":
			return fmt.Errorf("%w: entry %d: empty id", ErrInvalidKB, i+1)
		case strings.TrimSpace(e.Question) == "":
			return fmt.Errorf("%w: entry %q: empty question", ErrInvalidKB, e.ID)
		case strings.TrimSpace(e.Answer) == "":
			return fmt.Errorf("%w: entry %q: empty answer", ErrInvalidKB, e.ID)
		}
		if j, ok := seen[id]; ok {
			return fmt.Errorf("%w: entry %d: duplicate id %q (first at entry %d)", ErrInvalidKB, i+1, e.ID, j+1)
		}
		seen[id] = i
	}
	for i, g := range kb.Synonyms {
		n := 0
		for _, w := range g {
			if strings.TrimSpace(w) != "" {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%w: synonym group %d: needs at least two words", ErrInvalidKB, i+1)
		}
	}
	return nil
}
