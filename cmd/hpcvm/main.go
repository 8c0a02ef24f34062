// Command hpcvm is the operator's CLI: it submits start, stop and destroy
// runs of a cluster to Temporal, follows them, and shows a cluster's status.
package main

import (
	"os"

	"github.com/hpcvm/hpcvm/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
