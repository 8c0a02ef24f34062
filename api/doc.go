// Package api is hpcvm's contract with the code that drives it: the names
// of the workflows, queries, updates and task queues, the workflow IDs,
// and the requests and results they exchange, down to the inventory and
// the host-change records those results carry.
//
// It needs neither cgo nor libvirt nor viper: a workflow of another team
// that composes cluster creation (StartCluster as a child workflow; see
// examples/compose) builds with CGO_ENABLED=0 against this package and
// the cluster model alone. The workflows and activities packages use the
// same types under their old names.
package api
