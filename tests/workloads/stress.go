// stress: the runtime paths a tracer must never disturb, each printing a
// result that depends only on its inputs, so a traced run's output can be
// compared with an untraced one's byte for byte.
//
//	-mode gc          allocation churn through many GC cycles (checksum)
//	-mode stack       deep recursion in many goroutines: stacks grow by
//	                  copying while the probes fire (sum)
//	-mode goroutines  100 000 short goroutines (count)
//	-mode panics      panics recovered in goroutines (count)
//	-mode signals     SIGUSR1 sent to itself, each waited for (count)
//	-mode user        os/user.Current (a cgo call in a cgo build)
//	-mode all         every mode above, in this order
//
// -rounds N runs it all N times (the long variant of the test).
//
// Ground truth: the same binary run without the tracer.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"sync"
	"sync/atomic"
	"syscall"
)

func gc(rounds int) uint64 {
	var sum uint64
	keep := make([][]byte, 64)
	for i := 0; i < rounds; i++ {
		b := make([]byte, 64<<10)
		for j := range b {
			b[j] = byte(i + j)
		}
		keep[i%len(keep)] = b
		sum += uint64(b[i%len(b)])
	}
	return sum
}

//go:noinline
func deep(n int, pad [64]uint64) uint64 {
	if n == 0 {
		return pad[0]
	}
	pad[n%64] += uint64(n)
	return deep(n-1, pad) + uint64(n%7)
}

func stack(goroutines, depth int) uint64 {
	var total atomic.Uint64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var pad [64]uint64
			pad[0] = uint64(g)
			total.Add(deep(depth, pad))
			// A syscall between growths, so probes fire on grown stacks.
			syscall.Getpid()
		}(g)
	}
	wg.Wait()
	return total.Load()
}

func goroutines(n int) int64 {
	var count atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			count.Add(1)
		}()
	}
	wg.Wait()
	return count.Load()
}

func panics(n int) int64 {
	var recovered atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					recovered.Add(1)
				}
			}()
			if i >= 0 {
				panic(fmt.Sprintf("panic %d", i))
			}
		}(i)
	}
	wg.Wait()
	return recovered.Load()
}

func signals(n int) int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	got := 0
	for i := 0; i < n; i++ {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			fmt.Println("kill:", err)
			os.Exit(3)
		}
		<-ch
		got++
	}
	return got
}

func main() {
	mode := flag.String("mode", "all", "gc, stack, goroutines, panics, signals, user or all")
	rounds := flag.Int("rounds", 1, "times to run it all")
	flag.Parse()
	for i := 0; i < *rounds; i++ {
		run(*mode)
	}
}

func run(mode string) {
	all := mode == "all"
	ran := false
	if all || mode == "gc" {
		fmt.Println("gc", gc(6000))
		ran = true
	}
	if all || mode == "stack" {
		fmt.Println("stack", stack(64, 20000))
		ran = true
	}
	if all || mode == "goroutines" {
		fmt.Println("goroutines", goroutines(100000))
		ran = true
	}
	if all || mode == "panics" {
		fmt.Println("panics", panics(10000))
		ran = true
	}
	if all || mode == "signals" {
		fmt.Println("signals", signals(1000))
		ran = true
	}
	if all || mode == "user" {
		u, err := user.Current()
		if err != nil {
			fmt.Println("user:", err)
			os.Exit(4)
		}
		fmt.Println("user", u.Uid, u.Username)
		ran = true
	}
	if !ran {
		fmt.Println("unknown mode", mode)
		os.Exit(2)
	}
}
