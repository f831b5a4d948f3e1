// httpserver: a net/http server on 127.0.0.1 for load tests (wrk) and the
// field case "a Go net/http server under wrk".
//
//	/file  http.ServeFile of a 64 KiB file (-size) in a temp dir (-dir)
//	/copy  the same file copied by hand: os.Open, f.Read of 16 KiB into a
//	       buffer, w.Write of it, until EOF (regular-file reads + socket
//	       writes, without ServeFile's sendfile)
//	/echo  echoes the request body (io.ReadAll of it, then one w.Write)
//
// -port P listens on 127.0.0.1:P (0, the default: an ephemeral port), then
// prints "ready PORT" on stdout. It runs until SIGTERM or SIGINT, then
// removes its temp dir (kept if -dir was given) and exits 0. Stdin is not
// read.
//
// Measured with strace -f (Go 1.19 and 1.27.3), per request on one
// kept-alive connection, after a first request of each kind (the first
// /file also loads the MIME tables once: openat of
// /usr/local/share/mime/globs2 ENOENT, /usr/share/mime/globs2 + EPERM):
//
//	                 /file (ServeFile)        /copy (by hand)    /echo (1000 B)
//	openat           1                        1                  -
//	epoll_ctl EPERM  1 (the regular file)     1                  -
//	fcntl            4 on 1.27 (0 on 1.19)    4 on 1.27          -
//	fstat, lseek     1, 1 (ServeFile's sniff) -                  -
//	read file        2 x 512 B (two sniffs)   4 x 16 KiB + 1 EOF -
//	read socket ok   2 (1 B + the rest)       2                  1-1.4
//	read EAGAIN      1 (1.0-1.16 measured)    1                  0.85-1
//	write            1 (header + 512 B)       5                  1
//	sendfile         1 (65024 B)              -                  -
//	close            1                        1                  -
//
// The socket reads: net/http's background read of 1 byte fails with EAGAIN
// while the handler runs (the goroutine parks in the netpoller), then
// returns the next request's first byte; the connection's read gets the
// rest. So with keep-alive, EAGAIN reads ~= requests (not exact: timing
// moves a few between the background read and the main read). New
// connections add accept4 (ok) + accept4 EAGAIN when the backlog is empty.
// /file's body goes out by sendfile(2), not read+write: use /copy for
// regular-file reads + socket writes.
//
// Whole run with no request (start-up + SIGTERM), errors only:
//
//	1.19:   accept4 EAGAIN 1, epoll_ctl EPERM 3, unlinkat EISDIR 2,
//	        unlinkat ENOTEMPTY 1 (os.RemoveAll of the temp dir at exit)
//	1.27.3: the same with epoll_ctl EPERM 2, plus prctl EINVAL 1
//	(and futex EAGAIN / restarts from the runtime's own locking).
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: ephemeral)")
	size := flag.Int("size", 64<<10, "size of the served file in bytes")
	dirFlag := flag.String("dir", "", "directory for the served file (default: a temp dir, removed at exit)")
	flag.Parse()

	dir := *dirFlag
	if dir == "" {
		d, err := os.MkdirTemp("", "httpserver")
		if err != nil {
			panic(err)
		}
		dir = d
		defer os.RemoveAll(dir)
	}
	// No extension: ServeFile sniffs the content type from the first 512 bytes.
	path := filepath.Join(dir, "file")
	data := make([]byte, *size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, path) // SERVE FILE
	})
	mux.HandleFunc("/copy", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(*size))
		buf := make([]byte, 16<<10)
		for {
			n, err := f.Read(buf) // FILE READ
			if n > 0 {
				w.Write(buf[:n])
			}
			if err != nil {
				break
			}
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// Read all of the body before writing: once the response header
		// is out, net/http discards the rest of an HTTP/1 body
		// (io.Copy(w, r.Body) would echo only the first 512 bytes).
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		panic(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Printf("ready %d\n", ln.Addr().(*net.TCPAddr).Port)
	<-sig
	ln.Close()
}
