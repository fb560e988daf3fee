package acl

import (
	"strconv"
	"strings"
)

// interner makes the rules of one policy share what they have in common:
// one compiled pattern per distinct source (and so at most one program per
// regular expression), one slice per distinct action list and one per
// distinct set of label conditions. Large rule sets repeat a few patterns
// on most rules (docker_auth's account "/.+/") and a few action lists on
// all of them, and a policy is held twice over while a reload builds the
// next one. Patterns are safe to share: they are immutable but for the
// lazily built program, which is safe for concurrent use. The zero value
// is ready to use.
type interner struct {
	patterns   map[string]*pattern
	actionSets map[string]*[]string
	labelSets  map[string]*[]labelCond
}

// pattern returns the compiled pattern for src, compiling it the first
// time. Invalid patterns are not kept: each use reports its error.
func (in *interner) pattern(src string) (*pattern, error) {
	if p, ok := in.patterns[src]; ok {
		return p, nil
	}
	p, err := compilePattern(src)
	if err != nil {
		return nil, err
	}
	if in.patterns == nil {
		in.patterns = map[string]*pattern{}
	}
	in.patterns[src] = p
	return p, nil
}

// actions returns a non-nil slice equal to list, shared with every other
// caller passing an equal list. The actions must be known ones (which
// contain no ',').
func (in *interner) actions(list []string) *[]string {
	key := strings.Join(list, ",")
	if a, ok := in.actionSets[key]; ok {
		return a
	}
	a := append([]string{}, list...)
	if in.actionSets == nil {
		in.actionSets = map[string]*[]string{}
	}
	in.actionSets[key] = &a
	return &a
}

// labels returns conds, or an equal set (same keys, same pattern sources)
// that another caller passed before.
func (in *interner) labels(conds []labelCond) *[]labelCond {
	var b strings.Builder
	for _, lc := range conds {
		b.WriteString(strconv.Itoa(len(lc.key)))
		b.WriteByte(':')
		b.WriteString(lc.key)
		b.WriteString(strconv.Itoa(len(lc.pat.src)))
		b.WriteByte(':')
		b.WriteString(lc.pat.src)
	}
	key := b.String()
	if l, ok := in.labelSets[key]; ok {
		return l
	}
	if in.labelSets == nil {
		in.labelSets = map[string]*[]labelCond{}
	}
	in.labelSets[key] = &conds
	return &conds
}
