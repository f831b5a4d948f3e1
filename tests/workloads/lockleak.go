// lockleak: goroutines that exit while locked to their OS thread
// (runtime.LockOSThread without UnlockOSThread, a "lock leak"): the
// runtime cannot know what state the goroutine left the thread in, so it
// ends the thread (goexit0 -> mexit -> exit(2) of that thread only), except
// on the main thread m0, which it wedges instead (mexit: "This is the main
// thread. Just wedge it": handoffp, then mPark, a futex wait, forever) since
// exiting the main thread would leave the process a zombie. Go 1.19 and
// 1.27 have the same code for both (read in their runtime/proc.go).
//
// Flags:
//
//	-n N        N goroutines each LockOSThread, wait until all N hold their
//	            thread at once, then return while locked: N threads exit.
//	-main       after the leaks, the main goroutine (locked to m0 from the
//	            start) calls runtime.Goexit while locked: m0 is wedged, not
//	            exited. A helper goroutine then reports and ends the
//	            process (os.Exit) unless it must wait (below).
//	-blocked K  before anything else, K goroutines LockOSThread and block
//	            forever in a raw blocking read(2) on a pipe nobody writes;
//	            the process then stays up until killed (SIGTERM, SIGKILL:
//	            SIGTERM is not caught, so the runtime re-raises it and the
//	            kernel ends every thread at once; no thread exits on its own,
//	            so NO leak happened for these K).
//	-hold       stay up after the report even with -blocked 0 (main, or
//	            with -main the helper, blocks in a raw pipe read(2) too).
//	-wait       after "ready", wait for a line on stdin before the leaks.
//
// main locks itself to m0 first thing, so no leaking goroutine ever runs on
// m0 (one that did would wedge m0 and only N-1 threads would exit).
//
// Stdout, one line each:
//
//	ready T            K blocked goroutines are in read(2) (checked in
//	                   /proc/self/task/*/syscall: K threads in syscall 0
//	                   on the pipe's fd); T = threads now
//	locked T           all N leaking goroutines hold a thread; T = threads
//	leaked N T         their N threads (tids taken with gettid after
//	                   locking) are gone from /proc/self/task; T = threads
//	m0 wedged T STATE  (-main) m0's /proc/self/task/PID stat state and
//	                   wchan after the Goexit: it is still listed
//	done               then exit 0 (not printed when staying up)
//
// Measured (strace -f -e trace=exit,exit_group, /proc/PID/task; Go 1.19,
// 1.21.13, 1.25.5, 1.27.3; 5 runs each of -n 8 and -n 8 -main):
//   - -n N: exactly N exit(2) calls (one per leaked thread), then one
//     exit_group. With -main also exactly N: m0 never calls exit; it stays
//     in /proc/PID/task, state S, wchan futex_do_wait, until exit_group.
//   - threads (/proc/self/task) for -n 8: ready 4-6, locked 12-14,
//     leaked 5-7; with -main, "m0 wedged" 5-7; for -n 2: locked 6-8,
//     leaked 5-7. The count after the leaks is not "locked - N": while
//     the goroutines held their threads, and as they exit, the runtime
//     starts other Ms (to run main's wake-up) that stay idle, so the count
//     can even stay equal (-n 2: locked 7, leaked 7 once in 10). The exact
//     figure is the N thread exits (and the N tids gone from /proc).
//   - -blocked 5 -n 0: ready 10 (5 blocked + main's hold read = 6 threads
//     in read(2), /proc/PID/task/*/syscall "0 ..."); SIGTERM: the runtime's
//     handler resets SIGTERM to SIG_DFL and re-raises it (rt_sigaction,
//     rt_sigprocmask, tgkill), every thread "killed by SIGTERM"; SIGKILL:
//     every thread "killed by SIGKILL". Either way 0 exit(2) and 0
//     exit_group calls: no leak.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

func threads() int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		panic(err)
	}
	return len(ents)
}

// inRead counts threads blocked in read(2) (syscall 0) on fd.
func inRead(fd int) int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		panic(err)
	}
	want := fmt.Sprintf("0 0x%x ", fd)
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/syscall")
		if err == nil && strings.HasPrefix(string(b), want) {
			n++
		}
	}
	return n
}

func main() {
	// m0 belongs to main from here on: no other goroutine runs on it.
	runtime.LockOSThread()

	n := flag.Int("n", 4, "goroutines that exit while locked")
	onMain := flag.Bool("main", false, "the main goroutine exits locked (runtime.Goexit) on m0")
	blocked := flag.Int("blocked", 0, "locked goroutines blocked forever in a pipe read")
	hold := flag.Bool("hold", false, "stay up after the report")
	wait := flag.Bool("wait", false, "after ready, wait for a line on stdin")
	flag.Parse()

	if *blocked > 0 {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			panic(err)
		}
		for i := 0; i < *blocked; i++ {
			go func() {
				runtime.LockOSThread()
				buf := make([]byte, 1)
				syscall.Read(p[0], buf) // BLOCKED READ: never returns
				panic("pipe read returned")
			}()
		}
		for inRead(p[0]) < *blocked {
			time.Sleep(time.Millisecond)
		}
	}
	fmt.Println("ready", threads())
	if *wait {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}

	var all, done sync.WaitGroup
	all.Add(*n)
	done.Add(*n)
	release := make(chan struct{})
	tids := make([]int, *n)
	for i := 0; i < *n; i++ {
		i := i
		go func() {
			runtime.LockOSThread() // LEAK: never unlocked
			tids[i] = syscall.Gettid()
			all.Done()
			<-release
			done.Done()
		}()
	}
	all.Wait()
	locked := threads()
	fmt.Println("locked", locked)
	close(release)
	done.Wait()
	// The goroutines are done; their threads end just after (goexit0 ->
	// mexit). Wait until /proc shows every one of them gone.
	deadline := time.Now().Add(5 * time.Second)
	for _, tid := range tids {
		for time.Now().Before(deadline) {
			if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	fmt.Println("leaked", *n, threads())

	stay := *blocked > 0 || *hold
	if *onMain {
		go func() {
			time.Sleep(100 * time.Millisecond)
			pid := os.Getpid()
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", pid))
			wchan, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/wchan", pid))
			state := "?"
			if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
				state = string(stat[i+2])
			}
			fmt.Println("m0 wedged", threads(), state, string(wchan))
			if stay {
				holdForever()
			}
			fmt.Println("done")
			os.Exit(0)
		}()
		runtime.Goexit() // MAIN EXITS LOCKED: wedges m0
	}
	if stay {
		holdForever()
	}
	fmt.Println("done")
}

// holdForever blocks in a raw read(2) on a pipe nobody writes: a thread in
// a system call keeps the runtime's deadlock check quiet (select{} would
// not, with every other goroutine asleep).
func holdForever() {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		panic(err)
	}
	buf := make([]byte, 1)
	syscall.Read(p[0], buf) // HOLD: never returns
	panic("pipe read returned")
}
