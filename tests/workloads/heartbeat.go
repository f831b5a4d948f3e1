// heartbeat: a long-running target for attach/detach tests. Every 5 ms it
// sleeps in a raw nanosleep and bumps a counter it writes to the file named
// by -file, so a test can see it keeps running after the tracer is gone.
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
)

func main() {
	path := flag.String("file", "", "counter file")
	flag.Parse()
	fmt.Println("ready")
	ts := syscall.Timespec{Nsec: 5_000_000}
	for i := 1; ; i++ {
		syscall.Nanosleep(&ts, nil)
		if *path != "" && i%10 == 0 {
			os.WriteFile(*path+".tmp", []byte(fmt.Sprint(i)), 0o644)
			os.Rename(*path+".tmp", *path)
		}
	}
}
