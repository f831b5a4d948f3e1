// threads: K goroutines each lock their OS thread, wait until all K hold a
// thread at once, then exit while still locked, so the runtime terminates
// exactly K threads (Go never ends a thread otherwise). main locks itself to
// the main thread first: a locked goroutine that exits on the main thread
// parks it instead of ending it, which would make the count K-1. Before exiting it
// prints the number of threads it has now, read from /proc/self/task:
// the tracer's "spawned - exited + 1" must equal it, and "exited" must be K.
// With -unlock (the fix) every goroutine unlocks first and no thread ends.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

func main() {
	k := flag.Int("k", 16, "goroutines that exit while locked")
	unlock := flag.Bool("unlock", false, "the fixed variant: unlock before exiting (no thread ends)")
	flag.Parse()
	runtime.LockOSThread() // keep the other goroutines off the main thread

	var locked, done sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < *k; i++ {
		locked.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread() // LOCK SITE: never unlocked, the thread dies with us
			if *unlock {
				defer runtime.UnlockOSThread()
			}
			locked.Done()
			<-release
		}()
	}
	locked.Wait()
	close(release)
	done.Wait()
	// Let the runtime finish tearing the locked threads down.
	for i := 0; i < 50; i++ {
		time.Sleep(10 * time.Millisecond)
		runtime.Gosched()
	}
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		panic(err)
	}
	fmt.Printf("threads_now=%d\n", len(entries))
}
