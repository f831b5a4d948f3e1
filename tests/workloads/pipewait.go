// pipewait: blocking pipe reads of a known count and duration. A raw pipe
// (syscall.Pipe2, O_CLOEXEC only: both ends blocking, never seen by the
// netpoller); a writer goroutine sleeps -ms M milliseconds then writes one
// byte, -n N times; the main goroutine makes N syscall.Read calls of one
// byte, each blocking ~M ms in the kernel (the first from the start of the
// writer's first sleep). Then it prints "done N" and exits 0.
//
// With -wait it makes the pipe, prints "ready", reads one line from stdin
// (one read(0, ...) of its own, plus one more if the line is split), then
// runs the reads, prints "done N" and exits.
//
// Ground truth (strace -f -y -T -e trace=read,write,pread64; Go 1.19 and
// 1.27.3, runs of -n 20 -ms 10, -n 5 -ms 100 and -n 3 -ms 1000):
//   - exactly N read(2) calls on the pipe (strace -y: "pipe:[...]"), each
//     returning 1 and taking M ms + 0.3-0.6 ms (-ms 10: 10.27-10.58 ms;
//     -ms 100: 100.46-100.67 ms), and exactly N write(2) of 1 byte on it.
//   - the runtime's other reads, all at start-up, none blocking: 1.19 one
//     read of /sys/kernel/mm/transparent_hugepage/hpage_pmd_size; 1.27.3
//     that one plus /proc/self/cgroup and /proc/self/mountinfo (3 reads)
//     and pread64 of the cgroup CPU quota (2 at start-up, then about one a
//     second while it runs: 6 in a 3 s run; 1 in all with
//     GODEBUG=updatemaxprocs=0, as support.rs's spawn_ready sets).
//   - -wait adds the stdin read(s); "done N" is one write(2) to fd 1.
//
// Threads (/proc/PID/task mid-run, strace's clones): 1.19 4 (3 clones),
// 1.27.3 5 mid-run (3 clones seen under strace): each blocking read holds
// its thread in the kernel and sysmon hands the P to another thread.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 20, "blocking reads")
	ms := flag.Int("ms", 10, "milliseconds each read blocks")
	wait := flag.Bool("wait", false, "print ready, wait for a line on stdin, then read")
	flag.Parse()

	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		panic(err)
	}
	if *wait {
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
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
	fmt.Println("done", *n)
}
