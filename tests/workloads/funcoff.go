// funcoff: where Go functions start in a Go binary, stripped or not, read
// with the standard library only (debug/elf + debug/gosym over
// .gopclntab), as an independent ground truth for the tracer's own pclntab
// reader: the tests put bpftrace uprobes at these offsets.
//
//	funcoff BINARY FUNC...   prints "FUNC 0xVADDR 0xFILEOFFSET" per function
//
// Exits 1 if a function is not in the table. The file offset is what
// bpftrace takes in `uprobe:BINARY:0xOFFSET` (it does not translate an
// address of a stripped binary). Checked on Debian's restic and etcd (Go
// 1.19, stripped, cgo): main.main and runtime.newm start with the Go
// prologue (`49 3b 66 10`, cmp rsp, [r14+0x10], or a lea before it for a
// large frame) at the printed offsets.
//
// debug/gosym needs the start of the Go text (runtime.text), not of the
// .text section: a cgo binary has C code first (0x100 bytes on those
// binaries), so it is read from the pclntab header (Go 1.18+: textStart
// after magic, pad, minLC, ptrSize, nfunc and nfiles).
package main

import (
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: funcoff BINARY FUNC...")
		os.Exit(2)
	}
	f, err := elf.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		fmt.Fprintln(os.Stderr, "no .gopclntab or .text section")
		os.Exit(1)
	}
	data, err := pcln.Data()
	if err != nil {
		panic(err)
	}
	start := text.Addr
	if len(data) >= 32 && binary.LittleEndian.Uint32(data) >= 0xfffffff0 {
		start = binary.LittleEndian.Uint64(data[24:])
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, start))
	if err != nil {
		panic(err)
	}
	for _, name := range os.Args[2:] {
		fn := tab.LookupFunc(name)
		if fn == nil {
			fmt.Fprintln(os.Stderr, "no function", name)
			os.Exit(1)
		}
		found := false
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && fn.Entry >= p.Vaddr && fn.Entry < p.Vaddr+p.Filesz {
				fmt.Printf("%s 0x%x 0x%x\n", name, fn.Entry, fn.Entry-p.Vaddr+p.Off)
				found = true
			}
		}
		if !found {
			fmt.Fprintln(os.Stderr, "no executable segment holds", name)
			os.Exit(1)
		}
	}
}
