// pread: issues exactly -n pread(2) calls of -size bytes on a cached file,
// split evenly over -g goroutines, through the syscall package (one syscall
// per call). Ground truth for exact counts and for the syscall-storm bench.
//
// With -wait it prints "ready" and waits for SIGUSR1 before starting, so a
// tracer can attach first. It prints "elapsed_ns=N" for the pread phase.
//
// With -tick D it issues one pread every D until killed instead (a steady,
// modest syscall rate: the bench's many-targets agent figures).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 200000, "total pread calls")
	g := flag.Int("g", 4, "goroutines")
	size := flag.Int("size", 64, "bytes per pread")
	path := flag.String("file", "/proc/self/exe", "file to read")
	wait := flag.Bool("wait", false, "print ready and wait for SIGUSR1")
	tick := flag.Duration("tick", 0, "one pread every tick until killed, instead of -n")
	flag.Parse()

	fd, err := syscall.Open(*path, syscall.O_RDONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(1)
	}
	if *wait {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		fmt.Println("ready")
		<-ch
	}
	if *tick > 0 {
		buf := make([]byte, *size)
		for range time.Tick(*tick) {
			if _, err := syscall.Pread(fd, buf, 0); err != nil {
				panic(err)
			}
		}
	}
	per := *n / *g
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *g; i++ {
		count := per
		if i == 0 {
			count += *n - per**g
		}
		wg.Add(1)
		go func(count int) {
			defer wg.Done()
			buf := make([]byte, *size)
			for j := 0; j < count; j++ {
				if _, err := syscall.Pread(fd, buf, 0); err != nil {
					panic(err)
				}
			}
		}(count)
	}
	wg.Wait()
	fmt.Printf("elapsed_ns=%d\n", time.Since(start).Nanoseconds())
}
