// inline: Go's own symbolization of call stacks with inlined calls, for
// the tracer's to be compared with. For a few stacks it prints the program
// counters runtime.Callers records (the runtime adds one per inlined call)
// and the frames runtime.CallersFrames makes of them, innermost first:
//
//	anchor 0x...           run-time address of main.anchor (PIE load bias)
//	stack NAME
//	pc 0x...               one per frame
//	frame FUNC<TAB>FILE<TAB>LINE
//	end
//	done
//
// then waits for its standard input to close, so that the test can read
// its memory map. Which calls are inlined is the compiler's choice (see
// `go build -gcflags=-m`); the stacks are built so that every Go version
// inlines some: runtime.Callers into its caller, chains of small main
// functions into one physical function, and sort.Search (with the closure
// it calls) into main.searched.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strings"
)

//go:noinline
func anchor() {}

// Inlined, as runtime.Callers is into it.
func captureInto(pcs []uintptr) int {
	return runtime.Callers(0, pcs) // LINE captureInto
}

func inner(pcs []uintptr) int  { return captureInto(pcs) }
func middle(pcs []uintptr) int { return inner(pcs) }

// deep: runtime.Callers, captureInto, inner and middle inlined in outer.
//
//go:noinline
func outer(pcs []uintptr) int { return middle(pcs) }

// A physical function of its own, runtime.Callers inlined into it.
//
//go:noinline
func capture() []uintptr {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(0, pcs) // LINE capture
	return pcs[:n]
}

//go:noinline
func leaf() []uintptr { return capture() }

func via() []uintptr { return leaf() }

// physical: inlined frames in two physical functions of one stack.
//
//go:noinline
func twoPhysical() []uintptr { return via() }

// searched: a standard-library function inlined into main, calling back.
//
//go:noinline
func searched() (pcs []uintptr) {
	sort.Search(4, func(i int) bool {
		if i == 2 {
			pcs = capture()
		}
		return i >= 2
	})
	return pcs
}

func print(w io.Writer, name string, pcs []uintptr) {
	var b strings.Builder
	fmt.Fprintf(&b, "stack %s\n", name)
	for _, pc := range pcs {
		fmt.Fprintf(&b, "pc %#x\n", pc)
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Fprintf(&b, "frame %s\t%s\t%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	b.WriteString("end\n")
	io.WriteString(w, b.String())
}

func main() {
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "anchor %#x\n", reflect.ValueOf(anchor).Pointer())
	pcs := make([]uintptr, 64)
	print(w, "deep", pcs[:outer(pcs)])
	print(w, "physical", twoPhysical())
	print(w, "searched", searched())
	io.WriteString(w, "done\n")
	w.Flush()
	io.Copy(io.Discard, os.Stdin)
}
