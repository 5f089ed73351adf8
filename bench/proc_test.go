package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     Stat
	}{
		{"plain", "5915 (cat) R 5819 5819 2539 0 -1 4194304 100 0 0 0 7 3 2 1 20 0 1 0 393903 3133440 380",
			Stat{PID: 5915, Comm: "cat", PPID: 5819, UTime: 7, STime: 3, CUTime: 2, CSTime: 1}},
		{"comm with spaces and parentheses", "102 (nginx: cache ) (x)) R 100 100 100 0 -1 4194624 10 0 0 0 10 5 0 0 20",
			Stat{PID: 102, Comm: "nginx: cache ) (x)", PPID: 100, UTime: 10, STime: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStat([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ParseStat = %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "12 cat R 1", "x (cat) R 1 1 1 0 -1 0 0 0 0 0 1 1 1 1", "12 (cat) R 1 1 1", "12 (cat) R 1 1 1 0 -1 0 0 0 0 0 -1 1 1 1", ")12 (cat"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) succeeded", bad)
		}
	}
}

func TestParseStatusKiB(t *testing.T) {
	t.Parallel()
	status := "Name:\tportico\nVmPeak:\t  900000 kB\nVmHWM:\t   40000 kB\nVmRSS:\t   39000 kB\n"
	if got, err := ParseStatusKiB([]byte(status), "VmHWM"); err != nil || got != 40000 {
		t.Errorf("VmHWM = %d, %v; want 40000", got, err)
	}
	if got, err := ParseStatusKiB([]byte(status), "VmRSS"); err != nil || got != 39000 {
		t.Errorf("VmRSS = %d, %v; want 39000", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmHWM:\t 12 MB\n", "VmHWM:\t -3 kB\n", "VmHWM:\n"} {
		if _, err := ParseStatusKiB([]byte(bad), "VmHWM"); err == nil {
			t.Errorf("ParseStatusKiB(%q) succeeded", bad)
		}
	}
}

func TestProcTree(t *testing.T) {
	t.Parallel()
	p := Proc{Root: filepath.Join("testdata", "proc")}
	tree, err := p.Tree(100)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tree[1:])
	if want := []int{100, 101, 102, 103}; !slices.Equal(tree, want) {
		t.Errorf("Tree(100) = %v, want %v", tree, want)
	}
	if tree, err := p.Tree(200); err != nil || !slices.Equal(tree, []int{200}) {
		t.Errorf("Tree(200) = %v, %v; want [200]", tree, err)
	}
	if _, err := p.Tree(999); err == nil {
		t.Error("Tree of a missing process succeeded")
	}
}

func TestProcTreeAccounting(t *testing.T) {
	t.Parallel()
	p := Proc{Root: filepath.Join("testdata", "proc")}
	// master 120+30+5+2, worker 1500+700, worker 10+5, grandchild 1+1.
	if got, err := p.TreeCPUTicks(100); err != nil || got != 2374 {
		t.Errorf("TreeCPUTicks(100) = %d, %v; want 2374", got, err)
	}
	if got, err := p.TreeCPUTicks(200); err != nil || got != 5000 {
		t.Errorf("TreeCPUTicks(200) = %d, %v; want 5000", got, err)
	}
	if got, err := p.TreePeakRSSKiB(100); err != nil || got != 4096+9000+2048+512 {
		t.Errorf("TreePeakRSSKiB(100) = %d, %v; want 15656", got, err)
	}
	if got, err := p.CPUsAllowed(200); err != nil || got != "0-1" {
		t.Errorf("CPUsAllowed(200) = %q, %v; want 0-1", got, err)
	}
	if _, err := p.TreeCPUTicks(999); err == nil {
		t.Error("TreeCPUTicks of a missing process succeeded")
	}
}

func TestResetPeakRSS(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, pid := range []string{"10", "11"} {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "clear_refs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stat := map[string]string{"10": "10 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20", "11": "11 (b) S 10 1 1 0 -1 0 0 0 0 0 0 0 0 0 20"}
	for pid, s := range stat {
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := (Proc{Root: root}).ResetPeakRSS(10); err != nil {
		t.Fatal(err)
	}
	for pid := range stat {
		b, err := os.ReadFile(filepath.Join(root, pid, "clear_refs"))
		if err != nil || string(b) != "5" {
			t.Errorf("clear_refs of %s = %q, %v; want \"5\"", pid, b, err)
		}
	}
}

// TestLiveProc reads this test process itself, so the readers are checked
// against the running kernel's format too.
func TestLiveProc(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	p := Proc{Root: "/proc"}
	pid := os.Getpid()
	st, err := p.Stat(pid)
	if err != nil || st.PID != pid || st.PPID != os.Getppid() {
		t.Fatalf("Stat(self) = %+v, %v", st, err)
	}
	if kib, err := p.TreePeakRSSKiB(pid); err != nil || kib <= 0 {
		t.Errorf("TreePeakRSSKiB(self) = %d, %v", kib, err)
	}
	if _, err := p.CPUsAllowed(pid); err != nil {
		t.Error(err)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("5915 (cat) R 5819 5819 2539 0 -1 4194304 100 0 0 0 7 3 2 1 20 0 1 0 393903"))
	f.Add([]byte("102 (nginx: cache ) (x)) R 100 100 100 0 -1 4194624 10 0 0 0 10 5 0 0 20"))
	f.Add([]byte("1 ()"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err == nil && len(st.Comm) > len(data) {
			t.Errorf("comm %q longer than the input", st.Comm)
		}
	})
}

func FuzzParseStatusKiB(f *testing.F) {
	f.Add([]byte("Name:\tportico\nVmHWM:\t   40000 kB\n"))
	f.Add([]byte("VmHWM:\t 12 MB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := ParseStatusKiB(data, "VmHWM"); err == nil && n < 0 {
			t.Errorf("negative size %d", n)
		}
	})
}
