package knowledge

// Temporary stand-ins for format.go and validate.go, written on another branch; this
// file goes when that branch is merged. Parse reads JSON only, Export writes JSON only,
// Validate checks what the FAQ engine needs.

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
)

// Validate returns nil, an *InvalidError with every problem, or an error wrapping
// ErrTooLarge.
func Validate(b *Base, lim Limits) error {
	if len(b.Entries) > lim.MaxEntries {
		return fmt.Errorf("%w: %d entries, at most %d", ErrTooLarge, len(b.Entries), lim.MaxEntries)
	}
	if data, err := json.Marshal(b); err == nil && len(data) > lim.MaxBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	var errs []FieldError
	seen := make(map[string]bool, len(b.Entries))
	for i := range b.Entries {
		e := &b.Entries[i]
		errs = append(errs, ValidateEntry(e, lim)...)
		if seen[e.ID] {
			errs = append(errs, FieldError{Field: "id", Message: fmt.Sprintf("entry %d: id %q is used twice", i+1, e.ID)})
		}
		seen[e.ID] = true
	}
	if len(errs) > 0 {
		return &InvalidError{Errors: errs}
	}
	return nil
}

// ValidateEntry returns the problems of one entry.
func ValidateEntry(e *Entry, lim Limits) []FieldError {
	var errs []FieldError
	if e.ID == "" || len(e.ID) > lim.MaxIDChars {
		errs = append(errs, FieldError{Field: "id", Message: "id must not be empty"})
	}
	if e.Question == "" {
		errs = append(errs, FieldError{Field: "question", Message: "question must not be empty"})
	}
	if e.Answer == "" {
		errs = append(errs, FieldError{Field: "answer", Message: "answer must not be empty"})
	}
	return errs
}

// Parse reads a base of JSON; other media types are ErrUnsupported.
func Parse(contentType string, data []byte, lang string, lim Limits) (*Base, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return nil, ErrUnsupported
	}
	if len(data) > lim.MaxBytes {
		return nil, ErrTooLarge
	}
	var b Base
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, &InvalidError{Errors: []FieldError{{Message: "not valid JSON: " + err.Error()}}}
	}
	if b.Language == "" {
		b.Language = lang
	}
	if err := Validate(&b, lim); err != nil {
		return nil, err
	}
	return &b, nil
}

// Export writes b as JSON.
func Export(w io.Writer, b *Base, format string) (contentType string, err error) {
	if format != "json" {
		return "", fmt.Errorf("%w: format %q", ErrUnsupported, format)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return "application/json; charset=utf-8", enc.Encode(b)
}
