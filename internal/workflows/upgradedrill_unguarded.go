//go:build upgradedrill && upgradedrill_unguarded

package workflows

const unguardedDrill = true
