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
