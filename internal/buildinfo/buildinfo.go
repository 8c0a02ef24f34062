// Package buildinfo says which hpcvm a binary is: the version Go records
// in it (module version, VCS revision and time, whether the tree had
// uncommitted changes), so the CLI and the worker can name themselves.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Version is "hpcvm <version> (<revision>[, modified], <commit time>, <go version>)".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "hpcvm (no build information)"
	}
	return describe(bi)
}

// Stamp is the build's version as the Makefile sets it (`git describe`,
// -ldflags -X): what a build says when the toolchain was told not to
// stamp version control data (-buildvcs=false, a copy without .git).
var Stamp string

func describe(bi *debug.BuildInfo) string {
	version := bi.Main.Version
	if version == "" || version == "(devel)" {
		version = "dev"
		if Stamp != "" {
			version = Stamp
		}
	}
	var details []string
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		details = append(details, "commit "+rev)
	}
	if settings["vcs.modified"] == "true" {
		details = append(details, "with uncommitted changes")
	}
	if t := settings["vcs.time"]; t != "" {
		details = append(details, t)
	}
	details = append(details, bi.GoVersion)
	return fmt.Sprintf("hpcvm %s (%s)", version, strings.Join(details, ", "))
}
