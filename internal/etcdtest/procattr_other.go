//go:build !linux

package etcdtest

import "syscall"

// procAttr returns nil: only Linux can tie etcd's life to the test's.
func procAttr() *syscall.SysProcAttr { return nil }
