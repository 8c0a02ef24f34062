//go:build upgradedrill

package workflows

import (
	"time"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/workflow"
)

// The upgrade drill (e2e TestWorkerUpgradedUnderARunningStart) builds the
// worker with this file: a release whose StartCluster changed in the way
// README.md, "Upgrading a worker", allows, to prove a start begun by the
// previous release completes on it. Built with the tag upgradedrill_unguarded
// as well, the same change is made without its version marker: the
// resumed run must then fail its workflow task as nondeterministic (and
// complete once the previous release's worker is back), which shows the
// drill can fail.

func init() { startCluster = drillStartCluster }

// Change IDs of the drill.
const (
	drillChangeBegin = "upgrade-drill-begin"
	drillChangeEnd   = "upgrade-drill-end"
)

// DrillNote is the note the drilled release adds to a start it finishes.
const DrillNote = "upgrade drill: the end of this run was executed by the upgraded worker"

func drillStartCluster(ctx workflow.Context, req api.Request) (api.StartResult, error) {
	// A new command before everything the previous release did: a run
	// begun by it has no marker here, so it replays without the command.
	if unguardedDrill || workflow.GetVersion(ctx, drillChangeBegin, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.Sleep(ctx, time.Millisecond); err != nil {
			return api.StartResult{}, err
		}
	}
	res, err := StartCluster(ctx, req)
	// A change after the point the previous release reached: taken by
	// the resumed run, which records it.
	if err == nil && workflow.GetVersion(ctx, drillChangeEnd, workflow.DefaultVersion, 1) == 1 {
		res.Notes = append(res.Notes, DrillNote)
	}
	return res, err
}
