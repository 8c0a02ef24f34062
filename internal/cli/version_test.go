package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWorkerVersionLine(t *testing.T) {
	assert.Equal(t, "hpcvm dev (commit 0123456789ab, go1.25.4) (on vm, pid 812)",
		workerVersionLine("hpcvm-worker hv1 pid 812 started 123 pidns 4026531836 boot b machine m@vm [hpcvm dev (commit 0123456789ab, go1.25.4)]"))
	assert.Equal(t, "hpcvm dev (go1.25.4) (on vm, pid 9)", workerVersionLine("hpcvm-worker hv1 pid 9@vm [hpcvm dev (go1.25.4)]"))
	assert.Equal(t, "version unknown (an older hpcvm-worker, or another program): 4711@vm@", workerVersionLine("4711@vm@"))
}
