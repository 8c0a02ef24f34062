package workflows

import "github.com/hpcvm/hpcvm/internal/activities"

// a names the activities in tests (env.OnActivity(a.EnsureNetwork, ...)):
// the workflows call them by their names (api.Act...), which are these
// methods' names (TestEveryActivityHasItsName).
var a *activities.Activities
