//go:build !linux

package main

import "syscall"

// workerAttr: only Linux can tie a worker's life to its parent's; elsewhere
// a killed campaign's workers run on until their job ends.
func workerAttr() *syscall.SysProcAttr { return nil }
