// demo: the bundled workload of `cargo xtask demo`. For about two seconds it
// does what Go services do: 64 goroutines reading files (each read holds a
// thread: file I/O is not netpolled), a loopback TCP echo (parked in the
// netpoller, no thread cost), timers, and 4 goroutines that exit while locked
// to their thread (each one kills a thread).
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func fileReaders(wg *sync.WaitGroup, stop <-chan struct{}) {
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := os.ReadFile("/proc/self/status"); err != nil {
					panic(err)
				}
				ts := syscall.Timespec{Nsec: 2_000_000}
				syscall.Nanosleep(&ts, nil) // a blocking syscall: sysmon retakes the P
			}
		}()
	}
}

func echo(wg *sync.WaitGroup, stop <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); bufio.NewReader(c).WriteTo(c) }()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			panic(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			fmt.Fprintln(c, "ping")
			if _, err := r.ReadString('\n'); err != nil {
				panic(err)
			}
		}
	}()
}

func lockedExits() {
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the runtime kills this thread
			time.Sleep(10 * time.Millisecond)
		}()
	}
	wg.Wait()
}

func main() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	fileReaders(&wg, stop)
	echo(&wg, stop)
	lockedExits()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	fmt.Println("demo: done")
}
