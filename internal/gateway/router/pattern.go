package router

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

type segKind uint8

const (
	segStatic   segKind = iota // a literal segment
	segParam                   // "{name}": one non-empty segment
	segCatchAll                // "{name...}": the rest of the path, possibly empty
)

// patSeg is one "/"-separated part of a path pattern.
type patSeg struct {
	kind segKind
	text string // the literal, or the parameter name
}

// Segment is one "/"-separated part of a route path pattern: a literal, a
// "{name}" parameter, or a trailing "{name...}" that captures the rest.
type Segment struct {
	Literal string
	Param   string
	Rest    bool
}

// ParsePattern checks a route path pattern and returns its segments. The
// configuration loader uses it too, so that one grammar decides what a
// pattern is.
func ParsePattern(p string) ([]Segment, error) {
	segs, err := parsePattern(p)
	if err != nil {
		return nil, err
	}
	out := make([]Segment, len(segs))
	for i, s := range segs {
		switch s.kind {
		case segStatic:
			out[i] = Segment{Literal: s.text}
		case segParam:
			out[i] = Segment{Param: s.text}
		default:
			out[i] = Segment{Param: s.text, Rest: true}
		}
	}
	return out, nil
}

// parsePattern checks a path pattern and splits it into segments. "/" is one
// empty static segment, and a trailing slash is a final empty static segment.
func parsePattern(p string) ([]patSeg, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("pattern %q must start with \"/\"", p)
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("pattern %q is not valid UTF-8", p)
	}
	parts := strings.Split(p[1:], "/")
	segs := make([]patSeg, 0, len(parts))
	nparams := 0
	for i, part := range parts {
		last := i == len(parts)-1
		if !strings.ContainsAny(part, "{}") {
			if part == "" && !last {
				return nil, fmt.Errorf("pattern %q has an empty segment, which a canonical path never has", p)
			}
			if err := checkLiteral(part); err != nil {
				return nil, fmt.Errorf("pattern %q: %w", p, err)
			}
			segs = append(segs, patSeg{kind: segStatic, text: part})
			continue
		}
		seg, err := parseParamSeg(part, last)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p, err)
		}
		for _, s := range segs {
			if s.kind != segStatic && s.text == seg.text {
				return nil, fmt.Errorf("pattern %q: parameter %q appears twice", p, seg.text)
			}
		}
		if nparams++; nparams > exchange.MaxParams {
			return nil, fmt.Errorf("pattern %q has more than %d parameters", p, exchange.MaxParams)
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

func parseParamSeg(part string, last bool) (patSeg, error) {
	if len(part) < 2 || part[0] != '{' || part[len(part)-1] != '}' {
		return patSeg{}, fmt.Errorf("segment %q: a parameter must be a whole segment such as \"{id}\"", part)
	}
	name, rest := strings.CutSuffix(part[1:len(part)-1], "...")
	if !isIdentifier(name) {
		return patSeg{}, fmt.Errorf("segment %q: a parameter name is letters, digits and _, not starting with a digit", part)
	}
	if rest && !last {
		return patSeg{}, fmt.Errorf("segment %q: a \"{name...}\" parameter must be the last segment", part)
	}
	if rest {
		return patSeg{kind: segCatchAll, text: name}, nil
	}
	return patSeg{kind: segParam, text: name}, nil
}

// checkLiteral refuses literal text that a canonical path can never contain,
// so a route that could never match is reported when it is built.
func checkLiteral(s string) error {
	if s == "." || s == ".." {
		return fmt.Errorf("segment %q never appears in a canonical path", s)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("control character in %q", s)
		case c == '\\' || c == ';':
			return fmt.Errorf("%q contains %q, which a canonical path never has", s, c)
		case c == '?' || c == '#':
			return fmt.Errorf("%q contains %q: patterns match the path only", s, c)
		case c == '{' || c == '}':
			return fmt.Errorf("%q: braces are only allowed around a whole-segment parameter", s)
		}
	}
	return nil
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// paramNames returns the parameter names of segs in order.
func paramNames(segs []patSeg) []string {
	var names []string
	for _, s := range segs {
		if s.kind != segStatic {
			names = append(names, s.text)
		}
	}
	return names
}
