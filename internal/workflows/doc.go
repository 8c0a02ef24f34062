// Package workflows holds the durable sagas of hpcvm: StartCluster,
// StopCluster, DestroyCluster, and the read-only DescribeCluster. They decide
// order, parallelism, compensations, timeouts and retries; they do no I/O.
// Every libvirt step is an activity run by the worker of the cluster's host.
package workflows
