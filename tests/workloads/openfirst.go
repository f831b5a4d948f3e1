// openfirst: the first thing main does is open the file named on its
// command line (expected not to exist, so the call fails with ENOENT and is
// easy to single out), then it exits. A tracer that holds the process until
// its probes are live must see that call.
package main

import (
	"os"
	"syscall"
)

func main() {
	_, err := syscall.Open(os.Args[1], syscall.O_RDONLY, 0)
	if err == nil {
		os.Exit(3)
	}
}
