// errnos: failing system calls in known numbers, one flag per kind (the
// defaults are all different so that a count identifies its row):
//
//	-open N     os.Open of a missing file in a temp dir      openat   ENOENT
//	-mkdir N    os.Mkdir of the (existing) temp dir          mkdirat  EEXIST
//	-badf N     syscall.Read on fd 10000 (never open)        read     EBADF
//	-refused N  blocking syscall.Connect to 127.0.0.1:P      connect  ECONNREFUSED
//	-dial N     net.Dial("tcp", 127.0.0.1:P)                 connect  EINPROGRESS
//	            (P: a port bound by a raw socket that never listens, so no
//	            other program can take it while this runs)
//	-unlink N   syscall.Unlink of a missing file             unlinkat ENOENT
//	-eagain N   syscall.Read on an empty O_NONBLOCK pipe     read     EAGAIN
//
// Then it removes its (empty) temp dir with rmdir, prints "done" and exits 0.
// With -wait it first sets up (temp dir, pipe, bound socket), prints
// "ready", waits for a line on stdin, makes the failing calls, prints
// "done", and waits for stdin to reach EOF before cleaning up and exiting.
//
// Measured (strace -f -c, error column, and strace -f -e status=failed;
// Go 1.19 and 1.27.3, CGO_ENABLED=0, defaults, 5 runs each, also with
// -wait): the workload's own failing calls are exactly
//
//	syscall   errno         count  (default flag)
//	openat    ENOENT        -open     (10)
//	mkdirat   EEXIST        -mkdir    (9)
//	read      EBADF         -badf     (8)
//	connect   ECONNREFUSED  -refused  (7)
//	connect   EINPROGRESS   -dial     (4)
//	unlinkat  ENOENT        -unlink   (6)
//	read      EAGAIN        -eagain   (5)
//
// and nothing else fails on their account. Go's net.Dial never makes a
// syscall fail with ECONNREFUSED: it opens a non-blocking socket, connect(2)
// fails with EINPROGRESS (on loopback too: the SYN is answered in softirq
// after connect returns), it registers the socket with epoll (the first
// dial also creates the netpoller: epoll_create1, eventfd2/pipe2), waits
// for writability, then getsockopt(SO_ERROR) SUCCEEDS and returns
// ECONNREFUSED as the value; epoll_ctl DEL, close. So per dial: socket,
// connect EINPROGRESS, epoll_ctl ADD, getsockopt, epoll_ctl DEL, close (and
// maybe an epoll_pwait). Hence -refused uses a blocking raw connect, which
// fails with ECONNREFUSED itself. Beware os.Remove too: on a missing name
// it calls unlinkat twice (unlink, then rmdir: flags 0 and AT_REMOVEDIR),
// which is why -unlink uses syscall.Unlink.
//
// Failing calls the runtime makes anyway, independent of the flags (a run
// with every flag 0): none on 1.19; on 1.27.3 one prctl EINVAL at start-up
// (PR_SET_VMA_ANON_NAME " Go: immortal metadata": this kernel is built
// without anonymous VMA names). A cgo build (CGO_ENABLED=1) adds the
// dynamic loader's access("/etc/ld.so.preload") ENOENT at exec. Either
// version may also show a few futex EAGAIN (the runtime's own lock races)
// and, under strace, restarted futex or epoll waits (ERESTARTSYS and the
// like): subtract a 0-flag baseline or compare only the rows above, or
// attach after "ready" with -wait.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	nOpen := flag.Int("open", 10, "openat ENOENT calls")
	nMkdir := flag.Int("mkdir", 9, "mkdirat EEXIST calls")
	nBadf := flag.Int("badf", 8, "read EBADF calls")
	nRefused := flag.Int("refused", 7, "connect ECONNREFUSED calls")
	nDial := flag.Int("dial", 4, "net.Dial calls (connect EINPROGRESS, then getsockopt gives ECONNREFUSED)")
	nUnlink := flag.Int("unlink", 6, "unlinkat ENOENT calls")
	nEagain := flag.Int("eagain", 5, "read EAGAIN calls")
	wait := flag.Bool("wait", false, "print ready, wait for a line on stdin, fail, print done, wait for EOF")
	flag.Parse()

	dir, err := os.MkdirTemp("", "errnos")
	if err != nil {
		panic(err)
	}
	missing := filepath.Join(dir, "missing")

	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		panic(err)
	}

	// A port nobody listens on and nobody else can take: bound, not listening.
	s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := syscall.Bind(s, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		panic(err)
	}
	sa, err := syscall.Getsockname(s)
	if err != nil {
		panic(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)

	var stdin *bufio.Reader
	if *wait {
		stdin = bufio.NewReader(os.Stdin)
		fmt.Println("ready")
		stdin.ReadString('\n')
	}

	for i := 0; i < *nOpen; i++ {
		if _, err := os.Open(missing); !errors.Is(err, syscall.ENOENT) { // OPEN ENOENT
			panic(fmt.Sprint("open: ", err))
		}
	}
	for i := 0; i < *nMkdir; i++ {
		if err := os.Mkdir(dir, 0o755); !errors.Is(err, syscall.EEXIST) { // MKDIR EEXIST
			panic(fmt.Sprint("mkdir: ", err))
		}
	}
	buf := make([]byte, 16)
	for i := 0; i < *nBadf; i++ {
		if _, err := syscall.Read(10000, buf); err != syscall.EBADF { // READ EBADF
			panic(fmt.Sprint("read fd 10000: ", err))
		}
	}
	for i := 0; i < *nRefused; i++ {
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			panic(err)
		}
		if err := syscall.Connect(c, sa); err != syscall.ECONNREFUSED { // CONNECT ECONNREFUSED
			panic(fmt.Sprint("connect: ", err))
		}
		syscall.Close(c)
	}
	for i := 0; i < *nDial; i++ {
		if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) { // DIAL
			panic(fmt.Sprint("dial: ", err))
		}
	}
	for i := 0; i < *nUnlink; i++ {
		if err := syscall.Unlink(missing); err != syscall.ENOENT { // UNLINK ENOENT
			panic(fmt.Sprint("unlink: ", err))
		}
	}
	for i := 0; i < *nEagain; i++ {
		if _, err := syscall.Read(p[0], buf); err != syscall.EAGAIN { // READ EAGAIN
			panic(fmt.Sprint("read pipe: ", err))
		}
	}

	fmt.Println("done")
	if *wait {
		io.Copy(io.Discard, stdin)
	}
	if err := syscall.Rmdir(dir); err != nil {
		panic(err)
	}
}
