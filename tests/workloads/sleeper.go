// sleeper: -g goroutines each make -n raw nanosleep(20 ms) syscalls from
// one line of main.sleeper (marked below). Every call is slow, and sysmon
// retakes the P of a goroutine that stays in a syscall past 10 ms, so the
// tracer must list this call site with -g goroutines, -g*-n calls, and P
// handoffs. -ms M makes each sleep M milliseconds instead of 20: with a
// long one (-g 200 -n 1 -ms 60000) every goroutine sits in nanosleep at
// main.sleeper for a minute, each holding its own thread (a thread
// explosion to attach to after the fact).
package main

import (
	"flag"
	"sync"
	"syscall"
)

func sleeper(n int, ms int64, wg *sync.WaitGroup) {
	defer wg.Done()
	ts := syscall.NsecToTimespec(ms * 1_000_000)
	for i := 0; i < n; i++ {
		syscall.Nanosleep(&ts, nil) // CALL SITE
	}
}

func main() {
	g := flag.Int("g", 4, "goroutines")
	n := flag.Int("n", 25, "sleeps per goroutine")
	ms := flag.Int64("ms", 20, "milliseconds per sleep")
	flag.Parse()
	var wg sync.WaitGroup
	for i := 0; i < *g; i++ {
		wg.Add(1)
		go sleeper(*n, *ms, &wg)
	}
	wg.Wait()
}
