// netidle: -conns loopback TCP connections held open by one process (a
// server goroutine and a client goroutine per connection, both blocked in
// Read), then -bursts rounds in which every client sends a message and the
// server echoes it. Network waits park in the netpoller: the thread count
// stays near GOMAXPROCS however many connections wait.
//
// With -wait it connects, prints "ready", waits for a line on stdin, runs
// the bursts, prints "done", and waits for stdin to close.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

func serve(c net.Conn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf) // SERVER READ
		if err != nil {
			return
		}
		c.Write(buf[:n])
	}
}

func main() {
	conns := flag.Int("conns", 2000, "connections")
	bursts := flag.Int("bursts", 3, "rounds of traffic on every connection")
	hold := flag.Duration("hold", 500*time.Millisecond, "keep the idle connections open this long after the bursts")
	wait := flag.Bool("wait", false, "print ready, wait for a line on stdin, then send")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	clients := make([]net.Conn, *conns)
	for i := range clients {
		if clients[i], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			panic(err)
		}
	}
	in := bufio.NewReader(os.Stdin)
	if *wait {
		fmt.Println("ready")
		in.ReadString('\n')
	}
	msg := make([]byte, 256)
	for b := 0; b < *bursts; b++ {
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				c.Write(msg)
				buf := make([]byte, len(msg))
				io.ReadFull(c, buf) // CLIENT READ
			}(c)
		}
		wg.Wait()
	}
	time.Sleep(*hold)
	if *wait {
		fmt.Println("done")
		in.ReadString('\n')
	}
}
