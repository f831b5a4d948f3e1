// vdso: N raw clock_gettime(CLOCK_MONOTONIC) and N raw gettimeofday
// syscalls from main.rawClocks (real syscalls: the vDSO is bypassed),
// beside M time.Now() calls from main.nowLoop (served by the vDSO, so no
// syscall, unless runtime.vdsoClockgettimeSym was zeroed).
//
// With -wait it prints "ready" and waits for a line on stdin before
// working (so a tracer can attach, or a test can patch its memory), then
// prints "done" and waits for stdin to close.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

//go:noinline
func rawClocks(n int) {
	var ts syscall.Timespec
	var tv syscall.Timeval
	for i := 0; i < n; i++ {
		syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0) // RAW CLOCK_GETTIME
		syscall.Syscall(syscall.SYS_GETTIMEOFDAY, uintptr(unsafe.Pointer(&tv)), 0, 0)  // RAW GETTIMEOFDAY
	}
}

var sink int64

//go:noinline
func nowLoop(m int) {
	for i := 0; i < m; i++ {
		sink += time.Now().UnixNano() // TIME NOW
	}
}

func main() {
	n := flag.Int("n", 1000, "raw clock_gettime and gettimeofday syscalls (each)")
	m := flag.Int("now", 100000, "time.Now() calls")
	wait := flag.Bool("wait", false, "print ready, wait for a line on stdin, then work")
	flag.Parse()
	in := bufio.NewReader(os.Stdin)
	if *wait {
		fmt.Println("ready")
		in.ReadString('\n')
	}
	rawClocks(*n)
	nowLoop(*m)
	if *wait {
		fmt.Println("done")
		in.ReadString('\n')
	}
}
