package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// Secret is a secret value read from the environment or a file. Value is for demo
// tenants only and is marked as such in config.yaml.
type Secret struct {
	Env   string `yaml:"env"`   // name of an environment variable holding the secret
	File  string `yaml:"file"`  // path of a file holding the secret (trailing newline trimmed)
	Value string `yaml:"value"` // inline value: demo tenants only
}

// ResolveSecret reads s from exactly one of its sources (env, file or value). Errors
// never contain the secret.
func ResolveSecret(s Secret, getenv func(string) string) ([]byte, error) {
	set := 0
	for _, v := range []string{s.Env, s.File, s.Value} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("set exactly one of env, file, value")
	}
	switch {
	case s.Env != "":
		if getenv == nil {
			return nil, fmt.Errorf("env %s: no environment given", s.Env)
		}
		v := getenv(s.Env)
		if v == "" {
			return nil, fmt.Errorf("env %s: empty or unset", s.Env)
		}
		return []byte(v), nil
	case s.File != "":
		b, err := readSmallFile(s.File)
		if err != nil {
			return nil, err
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("file %s: empty", s.File)
		}
		return b, nil
	default:
		return []byte(s.Value), nil
	}
}

func readSmallFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxSecretFile {
		return nil, fmt.Errorf("file %s: larger than %d bytes", path, maxSecretFile)
	}
	return os.ReadFile(path)
}
