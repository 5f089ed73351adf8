package etcdtest

import "syscall"

// procAttr makes the kernel kill etcd when the test process dies without
// running its cleanups (a panic, a test timeout).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
