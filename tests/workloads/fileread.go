// fileread: -files goroutines each read a whole file with os.ReadFile,
// from files written first (or kept from an earlier run) and then dropped
// from the page cache (fsync, fadvise DONTNEED), so the reads really wait
// for the disk.
// File reads are not netpolled: each blocked read holds its thread, and
// sysmon hands its P to a new thread. -sem K bounds the concurrent reads
// (the fix); 0 leaves them unbounded.
//
// With -wait it prepares the files, prints "ready", waits for a line on
// stdin, reads, prints "done", and waits for stdin to close.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

const fadvDontneed = 4

// prepare writes the files (keeping ones already there at the right
// size), then drops every one from the page cache.
func prepare(dir string, n, size int) []string {
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%05d", i))
		if st, err := os.Stat(paths[i]); err != nil || st.Size() != int64(size) {
			if err := os.WriteFile(paths[i], buf, 0o644); err != nil {
				panic(err)
			}
		}
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			panic(err)
		}
		f.Sync() // dirty pages cannot be dropped
		syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontneed, 0, 0)
		f.Close()
	}
	return paths
}

var total int64

//go:noinline
func reader(path string, wg *sync.WaitGroup, sem chan struct{}, mu *sync.Mutex) {
	defer wg.Done()
	if sem != nil {
		sem <- struct{}{}
		defer func() { <-sem }()
	}
	data, err := os.ReadFile(path) // FILE READ
	if err != nil {
		panic(err)
	}
	mu.Lock()
	total += int64(len(data))
	mu.Unlock()
}

func main() {
	dir := flag.String("dir", os.TempDir(), "directory for the files")
	n := flag.Int("files", 1000, "files, one reading goroutine each")
	size := flag.Int("size", 1<<20, "bytes per file")
	semSize := flag.Int("sem", 0, "bound on concurrent reads (0: unbounded)")
	wait := flag.Bool("wait", false, "print ready, wait for a line on stdin, then read")
	flag.Parse()
	paths := prepare(*dir, *n, *size)
	in := bufio.NewReader(os.Stdin)
	if *wait {
		fmt.Println("ready")
		in.ReadString('\n')
	}
	var sem chan struct{}
	if *semSize > 0 {
		sem = make(chan struct{}, *semSize)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range paths {
		wg.Add(1)
		go reader(p, &wg, sem, &mu)
	}
	wg.Wait()
	if *wait {
		fmt.Println("done")
		in.ReadString('\n')
	}
}
