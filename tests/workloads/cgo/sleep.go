// cgo/sleep: -n goroutines blocking in C (usleep 2 ms, -calls times each),
// so every call holds an M in cgo while sysmon hands its P to a new thread:
// the cgo thread explosion. With -bound K at most K goroutines are in C at
// once (the fix: bound cgo concurrency), so threads stay near K.
package main

/*
#include <unistd.h>
static void block_in_c(int us) { usleep(us); }
*/
import "C"

import (
	"flag"
	"sync"
)

func main() {
	n := flag.Int("n", 8, "goroutines")
	calls := flag.Int("calls", 10, "C calls per goroutine")
	bound := flag.Int("bound", 0, "at most this many goroutines in C at once (0: no bound)")
	flag.Parse()
	var sem chan struct{}
	if *bound > 0 {
		sem = make(chan struct{}, *bound)
	}
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < *calls; j++ {
				if sem != nil {
					sem <- struct{}{}
				}
				C.block_in_c(2000) // CGO CALL
				if sem != nil {
					<-sem
				}
			}
		}()
	}
	wg.Wait()
}
