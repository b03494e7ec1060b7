package main

import "syscall"

// workerAttr makes a campaign's worker receive SIGKILL when the thread
// that started it ends, so a killed campaign leaves no job on the GPU.
func workerAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
