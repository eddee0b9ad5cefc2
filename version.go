package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the build's version, set with -ldflags "-X main.version=v1.2.3"; without
// it buildVersion reads the module's version or VCS revision.
var version string

// buildVersion returns the version set at link time, else the module version or VCS
// revision the Go toolchain recorded, else "devel".
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// runVersion prints the build's version, Go version and platform: fengda version.
func runVersion(stdout io.Writer) error {
	_, err := fmt.Fprintf(stdout, "fengda %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
