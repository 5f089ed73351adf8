package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat the harness needs. Times are in clock
// ticks (USER_HZ, 100 a second on Linux).
type Stat struct {
	PID  int
	Comm string
	PPID int
	// UTime and STime are the process's own user and system time;
	// CUTime and CSTime are those of its children that have exited and
	// been waited for.
	UTime, STime, CUTime, CSTime uint64
}

// ParseStat reads the contents of /proc/PID/stat. The command name is
// enclosed in parentheses and may itself contain spaces and parentheses,
// so the fields are counted from the last ")".
func ParseStat(data []byte) (Stat, error) {
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return Stat{}, errors.New("stat: no (comm)")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("stat: pid: %w", err)
	}
	// After ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime ... (fields 3.. of proc(5)).
	f := strings.Fields(string(data[end+1:]))
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("stat: %d fields after comm, want at least 15", len(f))
	}
	s := Stat{PID: pid, Comm: string(data[open+1 : end])}
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return Stat{}, fmt.Errorf("stat: ppid: %w", err)
	}
	for i, dst := range []*uint64{&s.UTime, &s.STime, &s.CUTime, &s.CSTime} {
		if *dst, err = strconv.ParseUint(f[11+i], 10, 64); err != nil {
			return Stat{}, fmt.Errorf("stat: field %d: %w", 14+i, err)
		}
	}
	return s, nil
}

// ParseStatusKiB returns the value in KiB of a "Name:   1234 kB" line of
// /proc/PID/status, such as VmHWM (peak resident set) or VmRSS.
func ParseStatusKiB(data []byte, name string) (int64, error) {
	v, ok := StatusField(data, name)
	if !ok {
		return 0, fmt.Errorf("status: no %s line", name)
	}
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("status: bad %s value %q", name, v)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("status: bad %s value %q", name, v)
	}
	return n, nil
}

// StatusField returns the value of a "Name:\tvalue" line of /proc/PID/status,
// trimmed, such as Cpus_allowed_list ("1" or "0-1").
func StatusField(data []byte, name string) (string, bool) {
	prefix := name + ":"
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// CPUsAllowed is the Cpus_allowed_list of pid: the cores it may run on.
func (p Proc) CPUsAllowed(pid int) (string, error) {
	data, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(pid), "status"))
	if err != nil {
		return "", err
	}
	v, ok := StatusField(data, "Cpus_allowed_list")
	if !ok {
		return "", errors.New("status: no Cpus_allowed_list line")
	}
	return v, nil
}

// Proc reads process accounting from a proc file system mounted at Root
// ("/proc" on a live system; a directory of fixtures in tests).
type Proc struct {
	Root string
}

// Stat reads /proc/PID/stat.
func (p Proc) Stat(pid int) (Stat, error) {
	data, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(data)
}

// Tree returns pid and every live descendant of it (an nginx master and its
// workers, for example), pid first.
func (p Proc) Tree(pid int) ([]int, error) {
	entries, err := os.ReadDir(p.Root)
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		st, err := p.Stat(child)
		if err != nil {
			continue // exited while we looked, or not a process
		}
		children[st.PPID] = append(children[st.PPID], child)
	}
	if _, err := os.Stat(filepath.Join(p.Root, strconv.Itoa(pid), "stat")); err != nil {
		return nil, err
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// TreeCPUTicks is the CPU time, in clock ticks, of pid and its live
// descendants, including children of theirs that have exited.
func (p Proc) TreeCPUTicks(pid int) (uint64, error) {
	tree, err := p.Tree(pid)
	if err != nil {
		return 0, err
	}
	var total uint64
	for i, q := range tree {
		st, err := p.Stat(q)
		if err != nil {
			if i == 0 {
				return 0, err
			}
			continue
		}
		total += st.UTime + st.STime + st.CUTime + st.CSTime
	}
	return total, nil
}

// TreePeakRSSKiB is the sum of VmHWM over pid and its live descendants.
func (p Proc) TreePeakRSSKiB(pid int) (int64, error) {
	tree, err := p.Tree(pid)
	if err != nil {
		return 0, err
	}
	var total int64
	for i, q := range tree {
		data, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(q), "status"))
		if err == nil {
			var kib int64
			kib, err = ParseStatusKiB(data, "VmHWM")
			total += kib
		}
		if err != nil && i == 0 {
			return 0, err
		}
	}
	return total, nil
}

// ResetPeakRSS resets VmHWM of pid and its live descendants to their
// current RSS (writing 5 to /proc/PID/clear_refs, Linux 4.0 and later), so
// the next reading is the peak of what happened since.
func (p Proc) ResetPeakRSS(pid int) error {
	tree, err := p.Tree(pid)
	if err != nil {
		return err
	}
	for _, q := range tree {
		f, err := os.OpenFile(filepath.Join(p.Root, strconv.Itoa(q), "clear_refs"), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString("5")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
