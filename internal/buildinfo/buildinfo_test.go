package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDescribe(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.25.4", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-04T17:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	assert.Equal(t, "hpcvm dev (commit 0123456789ab, with uncommitted changes, 2026-12-04T17:00:00Z, go1.25.4)", describe(bi))
	assert.Equal(t, "hpcvm v1.2.0 (go1.25.4)", describe(&debug.BuildInfo{GoVersion: "go1.25.4", Main: debug.Module{Version: "v1.2.0"}}))
	assert.Contains(t, Version(), "hpcvm ")
}

// A build without version control data (-buildvcs=false) still names
// itself when the Makefile stamped it.
func TestDescribeUsesTheMakefilesStamp(t *testing.T) {
	defer func(s string) { Stamp = s }(Stamp)
	Stamp = "4495e60-dirty"
	assert.Equal(t, "hpcvm 4495e60-dirty (go1.26.8)", describe(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}))
}
