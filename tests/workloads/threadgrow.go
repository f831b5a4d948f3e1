// threadgrow: starts one goroutine every -every, each blocked in a raw
// nanosleep for -hold, up to -max goroutines: each blocked goroutine keeps
// a thread, so the thread count climbs steadily (a slow thread leak), then
// stays. Prints "ready" first.
package main

import (
	"flag"
	"fmt"
	"syscall"
	"time"
)

//go:noinline
func blocker(hold time.Duration) {
	ts := syscall.NsecToTimespec(int64(hold))
	syscall.Nanosleep(&ts, nil) // BLOCKED
}

func main() {
	max := flag.Int("max", 40, "goroutines to start")
	every := flag.Duration("every", 50*time.Millisecond, "delay between goroutines")
	hold := flag.Duration("hold", time.Minute, "how long each one blocks")
	flag.Parse()
	fmt.Println("ready")
	for i := 0; i < *max; i++ {
		go blocker(*hold)
		time.Sleep(*every)
	}
	time.Sleep(*hold)
}
