// idlewait: a mostly idle program with a known amount of real goroutine
// blocking, so that idle runtime waits can be told apart from it.
//
// Idle, for the whole run (-d, default 2s):
//   - a goroutine in signal.Notify's channel receive (SIGUSR1, never sent):
//     the runtime's signal goroutine waits in os/signal.signal_recv;
//   - a TCP listener on 127.0.0.1:0 whose Accept never returns (parked in
//     the netpoller; nobody connects);
//   - a goroutine in a time.Sleep(-tick, 100ms) loop;
//   - the runtime's own: sysmon's nanosleep/usleep, idle Ms parked in
//     futex, the netpoller's epoll_pwait.
//
// Real blocking: -n N (20) read(2)s on a raw blocking pipe (syscall.Pipe2,
// never netpolled), each ~-ms M (10) ms: a writer goroutine sleeps M ms then
// writes one byte, N times, starting at once. Then the program idles until
// -d has passed since the start, prints "done N" and exits 0. With -wait it
// prints "ready" once everything is set up, waits for a line on stdin
// (one read(0) of its own), and counts -d from then.
//
// Measured (strace -f -T -y, GODEBUG=updatemaxprocs=0, Go 1.19 and
// 1.27.3, -n 20 -ms 10 -d 2s, two runs each): calls, and calls that took
// over 1 ms with their total time:
//
//	               1.19                            1.27.3
//	read on pipe   31 calls, 20 > 1 ms: 212-214 ms  20-21 calls, 20 > 1 ms: 222-225 ms
//	               (10.17-12.65 ms each)            (10.25-13.04 ms each)
//	futex          132-138, 77-78 > 1 ms: 3.9 s     143-146, 77-86 > 1 ms: 4.0-4.1 s
//	epoll_pwait    217-228, 73-76 > 1 ms: 2.0 s     180-190, 72-74 > 1 ms: 2.0 s
//	nanosleep      260-379, 9-24 > 1 ms: 32-119 ms  271-314, 7-10 > 1 ms: 34-56 ms
//	other > 1 ms   0-1 (a write delayed 2.8 ms)     0-1 (a sched_yield 1.6 ms)
//	threads        7-8                              8
//
// The only read(2)s that block are the N pipe reads (exactly 20 over 1 ms).
// 1.19's other pipe reads (11) are the netpoller's wake-up pipe (drained
// without blocking; 1.27 uses an eventfd). Everything else that waits is
// idle: futex (idle Ms parked in stopm, and one M held for the whole run
// by os/signal.signal_recv, which waits in notetsleepg: entersyscallblock
// then a futex sleep), epoll_pwait (an M waiting in the netpoller until
// the next timer: the sleeping goroutines; the idle Accept costs no call),
// nanosleep (sysmon's 20 µs-10 ms naps).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 20, "blocking pipe reads")
	ms := flag.Int("ms", 10, "milliseconds each pipe read blocks")
	d := flag.Duration("d", 2*time.Second, "run this long in all")
	tick := flag.Duration("tick", 100*time.Millisecond, "sleep period of the sleeping goroutine")
	wait := flag.Bool("wait", false, "print ready, wait for a line on stdin, then start")
	flag.Parse()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		<-sig // IDLE SIGNAL WAIT
		panic("SIGUSR1")
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		c, err := ln.Accept() // IDLE ACCEPT
		if err == nil {
			c.Close()
		}
	}()

	go func() {
		for {
			time.Sleep(*tick) // IDLE SLEEP
		}
	}()

	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		panic(err)
	}
	if *wait {
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	start := time.Now()

	go func() {
		b := []byte{1}
		for i := 0; i < *n; i++ {
			time.Sleep(time.Duration(*ms) * time.Millisecond)
			if _, err := syscall.Write(p[1], b); err != nil {
				panic(err)
			}
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < *n; i++ {
		if _, err := syscall.Read(p[0], buf); err != nil { // PIPE READ
			panic(err)
		}
	}

	time.Sleep(*d - time.Since(start))
	fmt.Println("done", *n)
}
