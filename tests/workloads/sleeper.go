// sleeper: -g goroutines each make -n raw nanosleep(20 ms) syscalls from
// one line of main.sleeper (marked below). Every call is slow, and sysmon
// retakes the P of a goroutine that stays in a syscall past 10 ms, so the
// tracer must list this call site with -g goroutines, -g*-n calls, and P
// handoffs.
package main

import (
	"flag"
	"sync"
	"syscall"
)

func sleeper(n int, wg *sync.WaitGroup) {
	defer wg.Done()
	ts := syscall.Timespec{Nsec: 20_000_000}
	for i := 0; i < n; i++ {
		syscall.Nanosleep(&ts, nil) // CALL SITE
	}
}

func main() {
	g := flag.Int("g", 4, "goroutines")
	n := flag.Int("n", 25, "sleeps per goroutine")
	flag.Parse()
	var wg sync.WaitGroup
	for i := 0; i < *g; i++ {
		wg.Add(1)
		go sleeper(*n, &wg)
	}
	wg.Wait()
}
