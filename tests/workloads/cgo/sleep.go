// cgo/sleep: goroutines blocking in C (usleep), so every call holds an M in
// cgo. Used to check cgo binaries are told apart, and (later) cgo thread
// growth.
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
	flag.Parse()
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < *calls; j++ {
				C.block_in_c(2000)
			}
		}()
	}
	wg.Wait()
}
