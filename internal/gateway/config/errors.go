package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	// File is the configuration file's name as given to Parse or Load.
	File string
	// Line and Column locate the problem (1-based); 0 when unknown.
	Line, Column int
	// Field is the path of the field concerned, such as
	// "routes[2].match.headers[0].regex"; empty for file-level problems.
	Field string
	// Msg says what is wrong and, where possible, how to fix it.
	Msg string
}

// Error formats e as "file:line:col: field: msg", leaving out the parts
// that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	writePos(&b, e.File, e.Line, e.Column)
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a configuration file, ordered by
// position. Parse and Load return an ErrorList as their error; use
// errors.As to get at the individual problems.
type ErrorList []*Error

// Error formats the list one problem per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, so errors.As can find an *Error.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// Warning is a likely mistake that does not stop the configuration from
// loading, such as a route that can never match.
type Warning struct {
	File  string
	Line  int
	Field string
	Msg   string
}

// String formats w as "file:line: warning: field: msg".
func (w Warning) String() string {
	var b strings.Builder
	writePos(&b, w.File, w.Line, 0)
	b.WriteString("warning: ")
	if w.Field != "" {
		b.WriteString(w.Field)
		b.WriteString(": ")
	}
	b.WriteString(w.Msg)
	return b.String()
}

func writePos(b *strings.Builder, file string, line, col int) {
	if file == "" && line == 0 {
		return
	}
	b.WriteString(file)
	if line > 0 {
		b.WriteString(":" + strconv.Itoa(line))
		if col > 0 {
			b.WriteString(":" + strconv.Itoa(col))
		}
	}
	b.WriteString(": ")
}

// suggest returns "; did you mean \"x\"?" for the candidate closest to s,
// or "" when none is close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	if best := closest(s, candidates); best != "" {
		return "; did you mean " + strconv.Quote(best) + "?"
	}
	return ""
}

// closest returns the candidate closest to s, or "" when none is close
// enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestDist := "", 0
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist > max(1, min(len(s), len(best))/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, capped in cost
// by the short strings it is used on (field and service names).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
