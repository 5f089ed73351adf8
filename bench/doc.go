// Package bench holds the parsers and the report of Portico's peer
// benchmark: wrk's output, the process accounting read from /proc, the
// median and spread of repeated runs, ratios against the direct backend and
// nginx, and the targets. The harness that starts the processes and
// drives wrk is cmd/peerbench; bench/run.sh is the one command that runs it.
package bench
