// faults: a target that ends badly, for the fault tests. It starts -g
// goroutines, each in a raw nanosleep of -ms milliseconds at main.holder
// (one thread each), prints "ready", waits -wait milliseconds (-1: until a
// line arrives on stdin, so a test ends it only once the tracer is live),
// then does -then:
//
//	panic    an unrecovered panic (exit status 2; with GOTRACEBACK=crash,
//	         SIGABRT)
//	nil      a nil pointer dereference (SIGSEGV, turned into a panic)
//	exec     syscall.Exec of -exec with -args (space-separated)
//	none     return from main
//
// -g 10500 with a long -ms crashes the runtime on its own: "program
// exceeds 10000-thread limit" (exit status 2).
//
// -waves: no goroutine starts before "ready"; each line on stdin then
// starts -g of them (a wave, for a tracer already attached to see), until
// a line "end" or the end of stdin, then -then.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

func holder(ms int64) {
	ts := syscall.NsecToTimespec(ms * 1_000_000)
	syscall.Nanosleep(&ts, nil) // CALL SITE
}

type thing struct{ n int }

func main() {
	g := flag.Int("g", 0, "goroutines, each holding a thread in nanosleep")
	ms := flag.Int64("ms", 60_000, "milliseconds each goroutine sleeps")
	wait := flag.Int64("wait", 0, "milliseconds between ready and the ending (-1: a line on stdin)")
	then := flag.String("then", "none", "panic | nil | exec | none")
	exe := flag.String("exec", "/bin/true", "program for -then exec")
	args := flag.String("args", "", "its arguments, space-separated")
	waves := flag.Bool("waves", false, "start -g goroutines on each line on stdin, until \"end\"")
	flag.Parse()
	if !*waves {
		for i := 0; i < *g; i++ {
			go holder(*ms)
		}
	}
	fmt.Println("ready")
	if *waves {
		in := bufio.NewReader(os.Stdin)
		for {
			line, err := in.ReadString('\n')
			if err != nil || strings.TrimSpace(line) == "end" {
				break
			}
			for i := 0; i < *g; i++ {
				go holder(*ms)
			}
		}
	} else if *wait < 0 {
		bufio.NewReader(os.Stdin).ReadString('\n')
	} else {
		time.Sleep(time.Duration(*wait) * time.Millisecond)
	}
	switch *then {
	case "panic":
		panic("faults: the ending asked for")
	case "nil":
		var p *thing
		fmt.Println(p.n)
	case "exec":
		argv := append([]string{*exe}, strings.Fields(*args)...)
		err := syscall.Exec(*exe, argv, os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(1)
	}
}
