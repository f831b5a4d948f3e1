// dnscgo: the cgo DNS thread explosion. -n 200 goroutines each call
// net.LookupHost("h<i>.gotracer.test") at once, against a stub nameserver
// this program starts itself on 127.0.0.1:53 (UDP) that reads and counts
// every query and never answers, so every lookup waits for the resolver's
// timeout. Run it ONLY through dns-sandbox.sh (a private network + mount
// namespace whose resolv.conf says "nameserver 127.0.0.1" and "options
// timeout:3 attempts:1"): it checks for that itself and refuses to look
// anything up (exit 2) if any interface but lo exists or resolv.conf
// names any other server, so it never reaches a real nameserver.
//
//	dns-sandbox.sh env GODEBUG=netdns=cgo dnscgo     # glibc getaddrinfo
//	dns-sandbox.sh env GODEBUG=netdns=go  dnscgo     # Go's own resolver
//
// Built with cgo (CGO_ENABLED=1; the import "C" below makes a build without
// cgo fail instead of silently using Go's resolver). With netdns=cgo each
// lookup is a cgo call to getaddrinfo that blocks in poll(2) for 3 s,
// holding its thread; sysmon hands each blocked M's P to a new thread, so
// ~N threads are created. With netdns=go the lookups park in the netpoller
// (2 connected UDP sockets per lookup: A and AAAA) and the thread count
// stays near GOMAXPROCS.
//
// Flags: -n N lookups (200), -domain D (gotracer.test), -peak: sample
// /proc/self/task every 2 ms and report the peak thread count (extra
// openat/getdents64/close calls; off by default), -wait: print "ready"
// once the stub listens, then wait for a line on stdin before the lookups.
// -serve D: no lookups; print "ready" once the stub listens, serve for D,
// then print "queries Q (A a AAAA b)" and exit (a stub for other resolvers
// run in the same sandbox, e.g. getent).
//
// Output: "ready" (with -wait), then one line:
//
//	lookups N failed F elapsed S queries Q (A a AAAA b) threads T [peak P]
//
// T = /proc/self/task entries at the end (threads never exit in Go).
//
// Measured (Go 1.19 and 1.27.3, cgo builds, in dns-sandbox.sh, -n 200;
// from outside: /proc/PID/task, /proc/PID/fd, /proc/PID/task/*/syscall
// 1.5 s into the lookups; strace -f -e clone,clone3,poll):
//
//	                   netdns=cgo                     netdns=go
//	threads before     5                              5
//	threads mid-run    203 (200 in poll(2), nr 7)     5 (4 futex, 1 epoll_pwait)
//	threads at the end 203 (205-206 with -peak)       5-7 (with -peak)
//	clone under strace 203                            5
//	sockets mid-run    201 (1 per getaddrinfo + stub) 401 (A + AAAA per lookup + stub)
//	poll(2) calls      400 (2 per getaddrinfo)        0
//	queries at stub    400 (A 200, AAAA 200)          400 (A 200, AAAA 200)
//	elapsed            3.04-3.41 s                    3.02-3.49 s
//	lookups failed     200 of 200                     200 of 200
//
// (A field measurement of the same case found 198 threads spawned, peak 203.)
// Without GODEBUG both versions pick Go's resolver in the sandbox
// (GODEBUG=netdns=2: hostLookupOrder files,dns).
// glibc sends A and AAAA together on one socket and waits 3 s in poll;
// Go's resolver dials one UDP socket per query. Neither adds search-domain
// queries (the sandbox's host name has no dot and resolv.conf no search).
package main

/*
// Nothing: the import makes this a cgo build.
*/
import "C"

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// sandboxed reports why this process might reach a real nameserver, or "".
func sandboxed() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return err.Error()
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return "interface " + i.Name + " is not loopback (run under dns-sandbox.sh)"
		}
	}
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return err.Error()
	}
	servers := 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			if f[1] != "127.0.0.1" {
				return "resolv.conf names nameserver " + f[1] + " (run under dns-sandbox.sh)"
			}
			servers++
		}
	}
	if servers == 0 {
		return "resolv.conf names no nameserver (run under dns-sandbox.sh)"
	}
	return ""
}

func threads() int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	return len(ents)
}

// qtype returns the type of a DNS query's first question (0 if unreadable).
func qtype(m []byte) int {
	i := 12
	for i < len(m) && m[i] != 0 {
		i += int(m[i]) + 1
	}
	if i+2 >= len(m) {
		return 0
	}
	return int(m[i+1])<<8 | int(m[i+2])
}

func main() {
	n := flag.Int("n", 200, "concurrent lookups")
	domain := flag.String("domain", "gotracer.test", "domain of the looked-up names")
	peak := flag.Bool("peak", false, "sample /proc/self/task every 2 ms and report the peak")
	wait := flag.Bool("wait", false, "print ready, wait for a line on stdin, then look up")
	serve := flag.Duration("serve", 0, "no lookups: print ready, run only the stub this long, print its count")
	flag.Parse()

	if why := sandboxed(); why != "" {
		fmt.Fprintln(os.Stderr, "dnscgo: refusing to resolve:", why)
		os.Exit(2)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		panic(err)
	}
	// 400 queries arrive within milliseconds with netdns=go: the default
	// receive buffer (rmem_default) would drop some. SO_RCVBUFFORCE (root)
	// goes past rmem_max.
	if rc, err := pc.(*net.UDPConn).SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20) != nil {
				pc.(*net.UDPConn).SetReadBuffer(8 << 20)
			}
		})
	}
	var queries, qa, qaaaa atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for {
			m, _, err := pc.ReadFrom(buf) // STUB READ: never answers
			if err != nil {
				return
			}
			queries.Add(1)
			switch qtype(buf[:m]) {
			case 1:
				qa.Add(1)
			case 28:
				qaaaa.Add(1)
			}
		}
	}()

	if *serve > 0 {
		fmt.Println("ready")
		time.Sleep(*serve)
		fmt.Printf("queries %d (A %d AAAA %d)\n", queries.Load(), qa.Load(), qaaaa.Load())
		return
	}
	if *wait {
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}

	var maxThreads atomic.Int64
	stop := make(chan struct{})
	if *peak {
		go func() {
			for {
				if t := int64(threads()); t > maxThreads.Load() {
					maxThreads.Store(t)
				}
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
	}

	start := time.Now()
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := net.LookupHost(fmt.Sprintf("h%d.%s", i, *domain)); err != nil { // LOOKUP
				failed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	// Late datagrams are already queued: give the stub a moment to count.
	time.Sleep(50 * time.Millisecond)
	line := fmt.Sprintf("lookups %d failed %d elapsed %.2f queries %d (A %d AAAA %d) threads %d",
		*n, failed.Load(), elapsed.Seconds(), queries.Load(), qa.Load(), qaaaa.Load(), threads())
	if *peak {
		line += fmt.Sprintf(" peak %d", maxThreads.Load())
	}
	fmt.Println(line)
}
