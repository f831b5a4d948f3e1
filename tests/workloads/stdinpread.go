// stdinpread: prints "ready" and waits for a line on stdin; then starts
// -lock goroutines that each lock their thread and sleep at the same time
// (the runtime needs a thread for each: new threads, as many as /proc
// shows), issues exactly -n pread(2) calls of 64 bytes on one goroutine
// (through the syscall package: one syscall per call), prints "done", and
// waits for stdin to close. Ground truth for `tracer serve`'s counts.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 10000, "pread calls")
	lock := flag.Int("lock", 0, "goroutines locked to their threads, sleeping together")
	flag.Parse()

	fd, err := syscall.Open("/proc/self/exe", syscall.O_RDONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(1)
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for i := 0; i < *lock; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			time.Sleep(100 * time.Millisecond)
			// Unlocked before it ends: its thread stays (no exit to count).
			runtime.UnlockOSThread()
		}()
	}
	wg.Wait()
	buf := make([]byte, 64)
	for i := 0; i < *n; i++ {
		if _, err := syscall.Pread(fd, buf, 0); err != nil {
			panic(err)
		}
	}
	fmt.Println("done")
	// Stays until stdin closes (the test ends it).
	in.ReadString('\n')
}
