// The program the gobinary seeds are cut from: a few system calls through
// os and syscall (inlined into main), a goroutine and a sleep.
package main

import (
	"os"
	"syscall"
	"time"
)

func read(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 64)
	n, _ := f.Read(buf)
	return n
}

func main() {
	done := make(chan int)
	go func() { done <- read("/proc/self/stat") }()
	time.Sleep(time.Millisecond)
	var ts syscall.Timespec
	_ = syscall.Nanosleep(&ts, nil)
	os.Stdout.Write([]byte{byte('0' + <-done%10), '\n'})
}
