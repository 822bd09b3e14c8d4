//go:build !linux

package main

import "syscall"

// childAttr: without Pdeathsig, children outlive a killed launcher; stdin EOF still stops them.
func childAttr() *syscall.SysProcAttr { return nil }
