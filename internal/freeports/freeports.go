// Package freeports finds free loopback ports for tests that start servers
// of their own (the dev server takes a block of consecutive ports).
package freeports

import (
	"fmt"
	"net"
	"testing"
)

// Block finds a base port such that base..base+span are all free on
// 127.0.0.1. Ports are probed by listening briefly; another process could
// still take one before the server binds it, so callers retry on failure.
func Block(t testing.TB, span int) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listening on loopback: %v", err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if base+span > 65535 {
			continue
		}
		ok := true
		for p := base; p <= base+span && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			_ = l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no block of free loopback ports found")
	return 0
}
