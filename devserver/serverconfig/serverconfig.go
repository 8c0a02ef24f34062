// Package serverconfig holds the dynamic configuration of the Temporal
// servers hpcvm embeds: the dev server (hpcvm-devserver) and the in-process
// servers of the tests and benchmarks, so both behave as one.
package serverconfig

import (
	"time"

	"go.temporal.io/server/common/dynamicconfig"
)

// Dynamic returns the settings on top of Temporal's defaults.
func Dynamic() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		// Make newly added search attributes visible immediately.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		// Eager activities: the activities a workflow task schedules come
		// back to the worker in the answer to that task's completion,
		// instead of through the worker's two activity pollers. A destroy
		// of 32 VMs schedules 32 domain deletions at once; polled, they
		// started over 1.6-2.1 s, the last ones waiting on a poller.
		dynamicconfig.EnableActivityEagerExecution.Key(): true,
		// A dev server has nothing to drain: stop quickly.
		dynamicconfig.FrontendShutdownDrainDuration.Key():           time.Duration(0),
		dynamicconfig.FrontendShutdownFailHealthCheckDuration.Key(): time.Duration(0),
	}
}
