package knowledge

import "fmt"

// Config bounds the tenants' bases and their history: the root configuration's
// knowledge section.
type Config struct {
	// MaxEntries caps the entries of one base. Default 10000.
	MaxEntries int `yaml:"max_entries"`
	// MaxBytes caps one base, as its JSON, and the body of an import. Default 16 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// Versions is how many versions of a base are kept for rollback; older ones are
	// deleted. Default 50.
	Versions int `yaml:"versions"`
}

// DefaultVersions is the default Config.Versions.
const DefaultVersions = 50

// maxVersions bounds Config.Versions: the version log travels in one record.
const maxVersions = 1000

// Defaults fills the zero fields of c.
func (c *Config) Defaults() {
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultLimits.MaxEntries
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultLimits.MaxBytes
	}
	if c.Versions == 0 {
		c.Versions = DefaultVersions
	}
}

// Validate returns an error naming the first field, by its YAML key, that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.MaxEntries < 1:
		return fmt.Errorf("max_entries: %d is not positive", c.MaxEntries)
	case c.MaxBytes < 1<<10:
		return fmt.Errorf("max_bytes: %d is below 1 KiB", c.MaxBytes)
	case c.Versions < 1 || c.Versions > maxVersions:
		return fmt.Errorf("versions: %d out of range 1..%d", c.Versions, maxVersions)
	}
	return nil
}

// Limits are DefaultLimits with the configured caps of a base.
func (c *Config) Limits() Limits {
	lim := DefaultLimits
	lim.MaxEntries, lim.MaxBytes = c.MaxEntries, c.MaxBytes
	return lim
}
