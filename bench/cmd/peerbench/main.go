// Command peerbench measures Portico beside nginx, HAProxy and Caddy and the
// backend alone, on loopback, in one run: it starts every process, runs wrk
// against each target round-robin for several rounds, reads each process's
// CPU time and peak memory from /proc, prints tables and writes a JSON
// report. bench/run.sh installs the tools, builds the binaries and runs it;
// see docs/performance.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	work, portico, backend, benchDir, results, commit string
	host                                              string
	basePort                                          int
	rounds                                            int
	duration, warmup                                  time.Duration
	quick, unpinned                                   bool
	wrkThreads                                        int
	only                                              string
}

func main() {
	var o options
	flag.StringVar(&o.work, "work", "", "scratch directory for configurations and logs (required)")
	flag.StringVar(&o.portico, "portico", "", "portico binary (required)")
	flag.StringVar(&o.backend, "backend", "", "bench-backend binary (required)")
	flag.StringVar(&o.benchDir, "bench-dir", "bench", "the repository's bench directory (configs, wrk script)")
	flag.StringVar(&o.results, "results", "bench/results", "directory the JSON report is written to")
	flag.StringVar(&o.commit, "commit", "unknown", "Portico commit being measured")
	flag.StringVar(&o.host, "host", "127.0.0.1", "loopback address every process listens on")
	flag.IntVar(&o.basePort, "base-port", 29100, "first of the loopback ports the run uses (base+1 .. base+40); keep them below the ephemeral range (32768 and up on Linux) so outgoing connections cannot hold them")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds; each target is measured once per scenario per round")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured wrk run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured wrk run before each target's first measurement")
	flag.BoolVar(&o.quick, "quick", false, "1 round of 2s runs with 1s warm-ups, to check the set-up")
	flag.BoolVar(&o.unpinned, "unpinned", false, "do not pin processes to cores (default: wrk on core 0; backend and proxy on core 1)")
	flag.IntVar(&o.wrkThreads, "wrk-threads", 0, "wrk threads (default 1 pinned, 2 unpinned)")
	flag.StringVar(&o.only, "scenarios", "", "comma-separated scenario ids to run (default all)")
	flag.Parse()
	if o.quick {
		o.rounds, o.duration, o.warmup = 1, 2*time.Second, time.Second
	}
	if o.wrkThreads == 0 {
		o.wrkThreads = 1
		if o.unpinned {
			o.wrkThreads = 2
		}
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func (o options) check() error {
	switch {
	case o.work == "" || o.portico == "" || o.backend == "":
		return errors.New("-work, -portico and -backend are required (bench/run.sh sets them)")
	case o.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case o.duration < time.Second || o.duration > 5*time.Minute:
		return errors.New("-duration must be between 1s and 5m")
	case o.warmup < 0 || o.warmup > time.Minute:
		return errors.New("-warmup must be between 0 and 1m")
	case o.duration%time.Second != 0 || o.warmup%time.Second != 0:
		return errors.New("-duration and -warmup must be whole seconds (wrk's -d takes no fractions)")
	case o.basePort < 1024 || o.basePort > 65000:
		return errors.New("-base-port must be between 1024 and 65000")
	}
	return checkLoopback(o.host)
}
