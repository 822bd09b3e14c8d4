package main

import "syscall"

// childAttr makes the kernel kill a child when the launcher dies, even by SIGKILL. (Pdeathsig
// follows the thread that started the child; the Go runtime does not end threads of goroutines
// that never call runtime.LockOSThread.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
