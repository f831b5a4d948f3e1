// The cgo variant: a C call (crosscall2, _cgo_topofstack in the pclntab).
package main

/*
#include <unistd.h>
static int pid(void) { return getpid(); }
*/
import "C"

import "os"

func main() {
	if C.pid() < 0 {
		os.Exit(1)
	}
}
