// noise: a little of what the tracer diagnoses when there is a lot of it,
// too little to be worth a verdict, and an exec:
//
//	-cputime N   N raw clock_gettime(CLOCK_PROCESS_CPUTIME_ID) syscalls
//	             from main.cpuTime (the vDSO never serves CPU-time clocks)
//	-mkdirall N  N os.MkdirAll of distinct paths a/b<i>/c under a fresh temp
//	             dir, from main.mkdirs, then os.RemoveAll of the tree
//	-exec PATH   at the end, syscall.Exec(PATH, [PATH], environ) instead of
//	             returning (e.g. /bin/true: the process exits 0 from there)
//
// Measured (strace -f -e trace=clock_gettime,mkdirat,execve,newfstatat;
// Go 1.19 and 1.27.3, -cputime 1 -mkdirall 5 -exec /bin/true): exactly one
// clock_gettime syscall in all, the CLOCK_PROCESS_CPUTIME_ID one (the
// runtime's own clock reads go through the vDSO); 12 mkdirat, none failing
// (MkdirTemp's, then a, and b<i> and b<i>/c for each of the 5), each
// after a newfstatat ENOENT; 2 execve: the launch and /bin/true's.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

const clockProcessCputimeID = 2

//go:noinline
func cpuTime(n int) {
	var ts syscall.Timespec
	for i := 0; i < n; i++ {
		syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCputimeID, uintptr(unsafe.Pointer(&ts)), 0) // RAW CPUTIME
	}
}

//go:noinline
func mkdirs(n int) {
	dir, err := os.MkdirTemp("", "noise")
	if err != nil {
		panic(err)
	}
	for i := 0; i < n; i++ {
		if err := os.MkdirAll(filepath.Join(dir, "a", fmt.Sprintf("b%d", i), "c"), 0o755); err != nil { // MKDIRALL
			panic(err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		panic(err)
	}
}

func main() {
	cputime := flag.Int("cputime", 0, "raw clock_gettime(CLOCK_PROCESS_CPUTIME_ID) syscalls")
	mkdirall := flag.Int("mkdirall", 0, "os.MkdirAll calls")
	exec := flag.String("exec", "", "program to exec at the end")
	flag.Parse()
	cpuTime(*cputime)
	mkdirs(*mkdirall)
	if *exec != "" {
		err := syscall.Exec(*exec, []string{*exec}, os.Environ()) // EXEC
		panic(err)
	}
}
