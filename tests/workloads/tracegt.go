// tracegt: a workload run with Go's own execution tracer on for its whole
// blocking phase, so the tracer's P handoffs and slow exits can be compared
// with the runtime/trace events. 8 goroutines x 40 raw nanosleep(5 ms), 4 x
// 5000 getpid, and 4 CPU spinners that keep run queues busy so sysmon
// retakes Ps from syscalls. With ALLOC=1 in the environment, one more
// goroutine allocates 64 KiB objects non-stop, so GC stop-the-worlds and
// forEachP meet Ps that are in syscalls.
package main

import (
	"os"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

var sink []byte

func main() {
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := trace.Start(f); err != nil {
		panic(err)
	}
	var stop atomic.Bool
	var spin sync.WaitGroup
	if os.Getenv("ALLOC") == "1" {
		spin.Add(1)
		go func() {
			defer spin.Done()
			for !stop.Load() {
				sink = make([]byte, 64<<10)
			}
		}()
	}
	for i := 0; i < 4; i++ {
		spin.Add(1)
		go func() {
			defer spin.Done()
			x := 0
			for !stop.Load() {
				x++
			}
			_ = x
		}()
	}
	var wg sync.WaitGroup
	ts := syscall.Timespec{Nsec: 5_000_000}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 40; j++ {
				syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
			}
		}()
	}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5000; j++ {
				syscall.Getpid()
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	spin.Wait()
	trace.Stop()
	f.Close()
}
