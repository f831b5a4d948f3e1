// forker: prints "ready", waits for a line on stdin, then runs
// `/bin/dd if=/dev/zero of=/dev/null bs=1 count=N` (-n, default 2000) as a
// child process, and prints "done" when it has ended. Ground truth for
// following a child forked after the tracer attached: dd makes N reads of
// one byte (and a few of its own at start-up).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
)

func main() {
	n := flag.Int("n", 2000, "bytes dd copies, one read each")
	flag.Parse()
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "stdin:", err)
		os.Exit(1)
	}
	cmd := exec.Command("/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=1", fmt.Sprintf("count=%d", *n))
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "dd: %v: %s\n", err, out)
		os.Exit(1)
	}
	fmt.Println("done")
	// Wait for the tracer to stop (stdin closed or another line).
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}
